// Command devcluster runs kubefwd's real local Kubernetes cluster by hand.
//
//	go run ./test/devcluster build
//	go run ./test/devcluster up --kubeconfig FILE [--seed demo|scale:NxM] [--name NAME]
//
// `build` compiles (or finds in the cache) the control-plane binaries. `up`
// starts a cluster, writes its kubeconfig to FILE, seeds it, prints a line
// starting with READY once everything seeded is ready and backed, and then
// serves the pods' backends until SIGINT or SIGTERM, when it tears down the
// cluster and removes FILE.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubefwd/kubefwd/test/devcluster/binaries"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/seed"
)

const usage = `usage:
  devcluster build
  devcluster up --kubeconfig FILE [--seed demo|scale:NxM] [--name NAME]
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "build":
		err = build(ctx, args[1:], stdout, stderr)
	case "up":
		err = up(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "devcluster: unknown command %q\n%s", args[0], usage)
		return 2
	}
	var usageErr usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usageErr):
		fmt.Fprintf(stderr, "devcluster: %v\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "devcluster: %v\n", err)
		return 1
	}
}

type usageError struct{ error }

func build(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	set, err := binaries.Ensure(ctx, binaries.Options{Log: stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "binaries for Kubernetes %s in %s\n", set.KubeVersion, set.Dir)
	return nil
}

func up(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", "", "write the cluster's admin kubeconfig to this `file` (required; removed at exit)")
	seedSpec := fs.String("seed", "", "seed the cluster: demo, or scale:NxM (N namespaces of M Services)")
	name := fs.String("name", "", "cluster name (default: a unique one)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *kubeconfig == "" {
		return usageError{errors.New("--kubeconfig FILE is required")}
	}
	var spec seed.Spec
	if *seedSpec != "" {
		var err error
		if spec, err = seed.Parse(*seedSpec); err != nil {
			return usageError{err}
		}
	}
	out, err := filepath.Abs(*kubeconfig)
	if err != nil {
		return err
	}
	if err := checkReplaceable(out); err != nil {
		return usageError{err}
	}

	start := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{Name: *name, Log: stderr})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintf(stderr, "devcluster: tearing down %s\n", c.Name)
		os.Remove(out)
		if err := c.Stop(context.WithoutCancel(ctx)); err != nil {
			fmt.Fprintf(stderr, "devcluster: teardown: %v\n", err)
		}
	}()
	if err := writeKubeconfig(c, out); err != nil {
		return err
	}
	if *seedSpec != "" {
		fmt.Fprintf(stderr, "devcluster: seeding %s\n", spec)
		if err := seed.Apply(ctx, c, spec); err != nil {
			if ctx.Err() != nil {
				return nil // interrupted while seeding
			}
			return fmt.Errorf("seed %s: %w", spec, err)
		}
	}
	fmt.Fprintf(stdout, "READY cluster=%s kubeconfig=%s context=%s elapsed=%s\n",
		c.Name, out, c.Context, time.Since(start).Round(100*time.Millisecond))
	<-ctx.Done()
	return nil
}

// writeKubeconfig writes a self-contained copy of the cluster's kubeconfig
// (certificates inlined) with its context selected.
func writeKubeconfig(c *cluster.Cluster, path string) error {
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.CurrentContext = c.Context
	if err := clientcmdapi.FlattenConfig(cfg); err != nil {
		return err
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return os.Chmod(path, 0o600)
}

// checkReplaceable refuses to overwrite a kubeconfig that is not a leftover
// of an earlier devcluster: the file is removed at exit, and pointing
// --kubeconfig at ~/.kube/config by mistake must not cost anyone theirs.
func checkReplaceable(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return fmt.Errorf("--kubeconfig %s exists and is not a kubeconfig; choose a new file (it is removed at exit)", path)
	}
	for name := range cfg.Contexts {
		if !strings.HasPrefix(name, "kwok-") {
			return fmt.Errorf("--kubeconfig %s exists and holds context %q that is not a devcluster's; choose a new file (it is removed at exit)", path, name)
		}
	}
	return nil
}
