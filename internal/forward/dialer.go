// Package forward carries TCP connections to pods over the Kubernetes
// port-forward protocol: one multiplexed tunnel per pod, many independent
// streams on it. It speaks the stream protocol over client-go's dialers and
// httpstream itself, rather than using portforward.PortForwarder, because
// that tears down every stream when one fails and pins a single pod.
package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	streamhttp "k8s.io/streaming/pkg/httpstream"
	streamspdy "k8s.io/streaming/pkg/httpstream/spdy"

	"github.com/kubefwd/kubefwd/internal/kubeapi"
)

// Pod names a pod.
type Pod struct{ Namespace, Name string }

func (p Pod) String() string { return p.Namespace + "/" + p.Name }

// Protocols a tunnel can run on.
const (
	ProtocolWebSocket = "websocket" // SPDY tunnelled over a WebSocket (kubectl ≥ 1.31)
	ProtocolSPDY      = "spdy"      // plain SPDY upgrade
)

// WebSocketsEnv is kubectl's switch for the WebSocket transport; "false"
// makes us use SPDY only, as kubectl does.
const WebSocketsEnv = "KUBECTL_PORT_FORWARD_WEBSOCKETS"

// DialerOptions configures a Dialer. The zero value is ready to use.
type DialerOptions struct {
	// Timeout bounds opening a tunnel (TCP, TLS and the upgrade). Default 15s.
	Timeout time.Duration
	// DisableWebSockets forces plain SPDY, and no direct connections.
	// NewDialer also sets it when KUBECTL_PORT_FORWARD_WEBSOCKETS=false is
	// in the environment.
	DisableWebSockets bool
	// DisableDirect keeps every connection on a tunnel (see ProtocolDirect).
	DisableDirect bool
}

// Dialer opens tunnels to pods of one cluster.
type Dialer struct {
	config *rest.Config
	client *kubeapi.Client
	// tls is shared by every SPDY tunnel, and with it a TLS session cache:
	// tunnels after the first resume the session instead of a full
	// handshake (no certificate checks, no client-key signature).
	tls        *tls.Config
	proxy      func(*http.Request) (*url.URL, error)
	timeout    time.Duration
	websockets bool
	direct     bool
}

// NewDialer prepares a Dialer for the cluster that config points at.
func NewDialer(config *rest.Config, opts DialerOptions) (*Dialer, error) {
	tlsConfig, err := rest.TLSConfigFor(config)
	if err != nil {
		return nil, fmt.Errorf("port-forward transport: %w", err)
	}
	if tlsConfig != nil {
		tlsConfig.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	}
	proxy := http.ProxyFromEnvironment
	if config.Proxy != nil {
		proxy = config.Proxy
	}
	client, err := kubeapi.New(config)
	if err != nil {
		return nil, fmt.Errorf("port-forward client: %w", err)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	websockets := !opts.DisableWebSockets
	if v, ok := os.LookupEnv(WebSocketsEnv); ok {
		if on, err := strconv.ParseBool(v); err == nil && !on {
			websockets = false
		}
	}
	return &Dialer{config: config, client: client, tls: tlsConfig, proxy: proxy, timeout: timeout, websockets: websockets,
		direct: websockets && !opts.DisableDirect}, nil
}

// Direct says whether connections may go on WebSockets of their own
// (DialDirect); not when WebSockets or direct connections are disabled.
func (d *Dialer) Direct() bool { return d.direct }

// URL is the portforward subresource of a pod.
func (d *Dialer) URL(pod Pod) *url.URL {
	return d.client.PortForwardURL(pod.Namespace, pod.Name)
}

// spdyDialer upgrades to SPDY. Each tunnel needs its own round tripper:
// client-go's keeps the connection of its last round trip for the upgrade
// that follows, so one shared by concurrent dials could hand a tunnel
// another pod's connection.
func (d *Dialer) spdyDialer(u *url.URL) (streamhttp.Dialer, error) {
	upgrader, err := streamspdy.NewRoundTripperWithConfig(streamspdy.RoundTripperConfig{
		TLS: d.tls, Proxier: d.proxy, PingPeriod: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	wrapper, err := rest.HTTPWrappersForConfig(d.config, upgrader)
	if err != nil {
		return nil, err
	}
	return spdy.NewDialerForStreaming(spdy.NewUpgraderForStreaming(upgrader), &http.Client{Transport: wrapper}, http.MethodPost, u), nil
}

// Dial opens a tunnel to pod: SPDY over WebSocket first, plain SPDY when the
// server (or a proxy on the way) cannot upgrade to WebSocket, as kubectl does.
func (d *Dialer) Dial(ctx context.Context, pod Pod) (*Tunnel, error) {
	u := d.URL(pod)
	dialer, err := d.spdyDialer(u)
	if err != nil {
		return nil, fmt.Errorf("tunnel to pod %s: %w", pod, err)
	}
	protocol := ProtocolSPDY
	// refusal is the API server's answer to the WebSocket request when it
	// was a Status (a 403 from RBAC, say); read only after the dial is done.
	var refusal *apierrors.StatusError
	if d.websockets {
		ws, err := portforward.NewSPDYOverWebsocketDialerForStreaming(u, d.config)
		if err != nil {
			return nil, fmt.Errorf("tunnel to pod %s: %w", pod, err)
		}
		protocol = ProtocolWebSocket
		dialer = portforward.NewFallbackDialerForStreaming(ws, dialer, func(err error) bool {
			if streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err) {
				protocol = ProtocolSPDY // read only after the dial is done
				var upgrade *streamhttp.UpgradeFailureError
				if errors.As(err, &upgrade) {
					errors.As(upgrade.Cause, &refusal)
				}
				return true
			}
			return false
		})
	}

	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	type result struct {
		conn streamhttp.Connection
		err  error
	}
	done := make(chan result, 1)
	// client-go's dialers take no context. The goroutine ends when the dial
	// does (the transport's TCP keepalive bounds even a silent peer); if we
	// gave up first, it closes the late connection.
	go func() {
		conn, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
		done <- result{conn, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			if refusal != nil && Forbidden(refusal) {
				// SPDY was refused too (RBAC may allow one and not the
				// other, so it was tried), but its error is only text: the
				// WebSocket answer says what was denied, and can be told
				// apart (Forbidden).
				return nil, fmt.Errorf("tunnel to pod %s: %w", pod, refusal)
			}
			return nil, fmt.Errorf("tunnel to pod %s: %w", pod, r.err)
		}
		return newTunnel(pod, r.conn, protocol), nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.conn != nil {
				r.conn.Close()
			}
		}()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("tunnel to pod %s: no answer within %s", pod, d.timeout)
		}
		return nil, fmt.Errorf("tunnel to pod %s: %w", pod, ctx.Err())
	}
}
