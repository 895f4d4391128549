package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/kubefwd/kubefwd/internal/cli"
)

// docs renders the shell completions and a man page per command from
// kubefwd's command tree — the tree of the platform this runs on (the
// helper's commands and the hosts file's default are Linux's on Linux).
// Everything is rendered here, in the release tool, so that cobra/doc and
// its markdown renderer never link into kubefwd. The pages are dated
// date (the commit's), not today, so that they are reproducible.
func docs(version string, date time.Time) ([]entry, error) {
	root := cli.NewRoot(cli.Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard})
	// What Execute would add: the help and completion commands.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	root.DisableAutoGenTag = true // no "Auto generated … on <today>" line

	var out []entry
	for _, c := range []struct {
		name string
		gen  func(io.Writer) error
	}{
		{"completions/kubefwd.bash", func(w io.Writer) error { return root.GenBashCompletionV2(w, true) }},
		{"completions/_kubefwd", root.GenZshCompletion},
		{"completions/kubefwd.fish", func(w io.Writer) error { return root.GenFishCompletion(w, true) }},
		{"completions/kubefwd.ps1", root.GenPowerShellCompletionWithDesc},
	} {
		var b bytes.Buffer
		if err := c.gen(&b); err != nil {
			return nil, fmt.Errorf("render %s: %w", c.name, err)
		}
		out = append(out, entry{Name: c.name, Mode: 0o644, Data: b.Bytes()})
	}

	day := date.UTC()
	var walk func(*cobra.Command) error
	walk = func(cmd *cobra.Command) error {
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
				if err := walk(sub); err != nil {
					return err
				}
			}
		}
		var b bytes.Buffer
		header := &doc.GenManHeader{Section: "1", Date: &day, Source: "kubefwd " + version, Manual: "kubefwd manual"}
		if err := doc.GenMan(cmd, header, &b); err != nil {
			return fmt.Errorf("render the man page of %s: %w", cmd.CommandPath(), err)
		}
		name := "man/" + strings.ReplaceAll(cmd.CommandPath(), " ", "-") + ".1"
		out = append(out, entry{Name: name, Mode: 0o644, Data: b.Bytes()})
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	return out, nil
}
