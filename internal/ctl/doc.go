// Package ctl holds the verbs that steer a running kubefwd through its
// control socket: status, events, refresh, pause, resume, stop,
// namespaces, logs, env, mcp and ui. None needs root (the socket belongs to
// the user who started kubefwd), and none links the engine: they speak the
// control API's language (package api) and nothing else.
package ctl
