package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// PortForwardGet sends one HTTP GET to a pod's port through the real
// port-forward path (kube-apiserver → kwok → backend) and returns the body.
// It speaks the port-forward stream protocol directly so that each call is
// one self-contained request, independent of kubefwd's own code.
func (c *Cluster) PortForwardGet(ctx context.Context, ns, pod string, port int32, path string) (string, error) {
	transport, upgrader, err := spdy.RoundTripperFor(c.RESTConfig)
	if err != nil {
		return "", err
	}
	u := c.Clientset.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(ns).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	conn, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return "", fmt.Errorf("port-forward to %s/%s: %w", ns, pod, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(int(port)))
	h.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := conn.CreateStream(h)
	if err != nil {
		return "", fmt.Errorf("port-forward to %s/%s: error stream: %w", ns, pod, err)
	}
	errStream.Close() // we never write to it
	remoteErr := make(chan string, 1)
	go func() {
		msg, _ := io.ReadAll(errStream)
		remoteErr <- string(msg)
	}()
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(h)
	if err != nil {
		return "", fmt.Errorf("port-forward to %s/%s: data stream: %w", ns, pod, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+pod+path, nil)
	if err != nil {
		return "", err
	}
	req.Close = true
	if err := req.Write(data); err != nil {
		return "", fmt.Errorf("port-forward to %s/%s:%d: write: %w", ns, pod, port, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(data), req)
	if err != nil {
		conn.Close()
		if msg := strings.TrimSpace(<-remoteErr); msg != "" {
			return "", fmt.Errorf("port-forward to %s/%s:%d: %s", ns, pod, port, msg)
		}
		return "", fmt.Errorf("port-forward to %s/%s:%d: read: %w", ns, pod, port, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("port-forward to %s/%s:%d: GET %s: %s", ns, pod, port, path, resp.Status)
	}
	return string(body), nil
}
