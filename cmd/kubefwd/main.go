// Command kubefwd makes every Service of a Kubernetes cluster reachable from
// this machine by its in-cluster name and real port.
package main

import (
	"context"
	"log/slog"
	"os"

	"k8s.io/klog/v2"

	"github.com/kubefwd/kubefwd/internal/cli"
)

func main() {
	// One logger for the process: ours and client-go's (klog) lines go to
	// stderr in the same format; -v lowers the level later.
	level := new(slog.LevelVar)
	sink := cli.NewLogSink(os.Stderr) // the live view may take it into a pane
	log := slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: level}))
	klog.SetSlogLogger(log)
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Streams{
		In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Log: log, Level: level, LogSink: sink,
	}))
}
