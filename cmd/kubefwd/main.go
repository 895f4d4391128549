// Command kubefwd makes every Service of a Kubernetes cluster reachable from
// this machine by its in-cluster name and real port.
package main

import (
	"context"
	"os"

	"github.com/kubefwd/kubefwd/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
