package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"k8s.io/client-go/rest"
)

// execAsUserCommand is the hidden verb that runs a kubeconfig exec plugin
// as the invoking user (see asUserConfig).
const execAsUserCommand = "exec-as-user"

// asUserConfig adjusts a context's client configuration under sudo. It
// runs inside the user's identity (kube.Resolve does), so the files the
// kubeconfig names are read now, with the user's rights, and kept in
// memory: client-go would otherwise read them again later, as root, and a
// kubeconfig could make root read any file and send it to a server of the
// user's choosing (a tokenFile of /root/secret). Exec plugins (aws,
// gcloud, kubelogin) are the user's programs: they run as the user,
// through this binary's exec-as-user verb, which drops root before it
// executes them. Rotation of certificate and token files is lost under
// sudo; exec plugins, the usual way to rotate, keep working.
func (o *svcOptions) asUserConfig(cfg *rest.Config) error {
	if err := rest.LoadTLSFiles(cfg); err != nil {
		return fmt.Errorf("credential file: %w", err)
	}
	cfg.CAFile, cfg.CertFile, cfg.KeyFile = "", "", ""
	if cfg.BearerTokenFile != "" {
		b, err := os.ReadFile(cfg.BearerTokenFile)
		if err != nil {
			return fmt.Errorf("token file: %w", err)
		}
		if cfg.BearerToken == "" {
			cfg.BearerToken = strings.TrimSpace(string(b))
		}
		cfg.BearerTokenFile = ""
	}
	if e := cfg.ExecProvider; e != nil {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("cannot run the exec plugin %s as %s: %w", e.Command, o.user, err)
		}
		args := []string{execAsUserCommand, "--uid", strconv.Itoa(o.user.UID), "--gid", strconv.Itoa(o.user.GID)}
		for _, g := range o.user.Groups {
			args = append(args, "--group", strconv.Itoa(g))
		}
		if o.user.Home != "" {
			args = append(args, "--home", o.user.Home)
		}
		if o.user.Name != "" {
			args = append(args, "--name", o.user.Name)
		}
		e.Args = append(append(args, "--", e.Command), e.Args...)
		e.Command = self
	}
	// Refreshed auth-provider tokens would be written back into the
	// kubeconfig by root: keep them in memory instead.
	cfg.AuthConfigPersister = nil
	return nil
}
