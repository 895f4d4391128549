package forward

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	wstransport "k8s.io/client-go/transport/websocket"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// ProtocolDirect is a connection carried on a WebSocket of its own, in the
// kubelet's own port-forward protocol (v4.channel.k8s.io), which every
// kubelet serves and the API server passes through as it is: one data and
// one error channel for the port, each message led by its channel's
// number, the kubelet's first message on each being the port. There is no
// SPDY in it, so none of SPDY's per-connection header compressor
// (moby/spdystream allocates a zlib writer at best compression for every
// connection: about 0.8 MB once its dictionary is loaded). A direct stream
// costs a TLS connection and two 33 KB buffers, and is closed with its
// client connection.
//
// What it cannot carry is a half-close: the protocol has no way to say
// that the client is done sending while it still reads. A pod that waits
// for that end before it answers (a request piped through nc -N) is served
// only over a tunnel.
const ProtocolDirect = "direct"

// directProtocol is the WebSocket subprotocol of the channel protocol.
const directProtocol = "v4.channel.k8s.io"

// The channels of a port-forward WebSocket with one port.
const (
	dataChannel  = 0
	errorChannel = 1
)

// ErrDirectRefused is returned by DialDirect when the server (or a proxy on
// the way) does not take the direct protocol; the caller uses a tunnel.
var ErrDirectRefused = errors.New("the server refused a direct port-forward WebSocket")

// DialDirect opens one connection to port of pod on a WebSocket of its own.
func (d *Dialer) DialDirect(ctx context.Context, pod Pod, port int32) (*Stream, error) {
	u := d.URL(pod)
	q := u.Query()
	q.Set("ports", strconv.Itoa(int(port)))
	u.RawQuery = q.Encode()

	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("connection to pod %s port %d: %w", pod, port, err)
	}
	// A round tripper per connection, as for tunnels (it keeps the
	// connection of its round trip); the TLS configuration with its session
	// cache is shared, so each connection after the first resumes a session.
	holder := &wstransport.RoundTripper{TLSConfig: d.tls, Proxier: d.proxy}
	rt, err := rest.HTTPWrappersForConfig(d.config, holder)
	if err != nil {
		return nil, fmt.Errorf("connection to pod %s port %d: %w", pod, port, err)
	}
	conn, err := wstransport.Negotiate(rt, holder, req, directProtocol)
	if err != nil {
		if refused(err) {
			return nil, fmt.Errorf("connection to pod %s port %d: %w: %w", pod, port, ErrDirectRefused, err)
		}
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("connection to pod %s port %d: no answer within %s", pod, port, d.timeout)
		}
		return nil, fmt.Errorf("connection to pod %s port %d: %w", pod, port, err)
	}
	c := &directCarrier{conn: conn, port: port, ended: make(chan struct{})}
	c.lastRead.Store(time.Now().UnixNano())
	pr, pw := io.Pipe()
	c.data = pr
	s := &Stream{pod: pod, port: port, c: c, remote: make(chan struct{})}
	go c.demux(s, pw)
	return s, nil
}

// refused tells a server (or proxy) that does not take the direct protocol
// (a bad request, an upgrade it will not do, RBAC allowing port-forward by
// POST only) from one that took it and failed this connection: a pod that
// is gone, credentials refused, a kubelet in trouble are this connection's
// failure, which a tunnel would meet too.
func refused(err error) bool {
	if streamhttp.IsHTTPSProxyError(err) {
		return true
	}
	var upgrade *streamhttp.UpgradeFailureError
	if !errors.As(err, &upgrade) {
		return false
	}
	var status *apierrors.StatusError
	if !errors.As(upgrade.Cause, &status) {
		return true // not the API server's answer: a proxy's
	}
	switch status.Status().Code {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusMethodNotAllowed, http.StatusUpgradeRequired, http.StatusNotImplemented:
		return true
	}
	return false
}

// directCarrier is a stream on a WebSocket of its own.
type directCarrier struct {
	conn *gwebsocket.Conn
	port int32
	data *io.PipeReader // the data channel's bytes, in order

	wmu sync.Mutex // one writer at a time (gorilla's rule)
	buf []byte     // the message being written: channel byte + data

	lastRead  atomic.Int64  // when the pod last sent data (unix ns)
	copying   atomic.Bool   // a message is being handed to the reader
	lingered  atomic.Bool   // closed by closeWrite's linger: an end, not a failure
	ended     chan struct{} // closed when demux ends
	lingering sync.Once
}

// demux reads the WebSocket until it ends: the data channel into w, the
// error channel into the stream's verdict. Reading waits while the data is
// not taken, so a slow client holds back the pod as a TCP connection would.
func (c *directCarrier) demux(s *Stream, w *io.PipeWriter) {
	defer close(c.ended)
	var verdict []byte
	skip := [2]int{2, 2} // each channel starts with the port, two bytes
	var err error
	for {
		var typ int
		var r io.Reader
		typ, r, err = c.conn.NextReader()
		if err != nil {
			break
		}
		if typ != gwebsocket.BinaryMessage {
			continue
		}
		var head [1]byte
		if _, err = io.ReadFull(r, head[:]); err != nil {
			continue // an empty message
		}
		ch := int(head[0])
		if ch != dataChannel && ch != errorChannel {
			continue
		}
		if skip[ch] > 0 {
			var port [2]byte
			n, _ := io.ReadFull(r, port[:skip[ch]])
			skip[ch] -= n
			if skip[ch] == 0 && n == 2 && int32(binary.LittleEndian.Uint16(port[:])) != c.port {
				err = fmt.Errorf("the kubelet opened port %d, not %d", binary.LittleEndian.Uint16(port[:]), c.port)
				break
			}
		}
		if ch == errorChannel {
			b, _ := io.ReadAll(io.LimitReader(r, int64(64<<10-len(verdict))))
			verdict = append(verdict, b...)
			continue
		}
		c.copying.Store(true)
		_, werr := io.Copy(w, r)
		c.lastRead.Store(time.Now().UnixNano())
		c.copying.Store(false)
		if werr != nil {
			break // our side closed the stream
		}
	}
	s.setRemote(verdict)
	close(s.remote)
	var closed *gwebsocket.CloseError
	if err == nil || c.lingered.Load() || errors.As(err, &closed) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		w.Close() // the pod side is done: EOF
		return
	}
	w.CloseWithError(err)
}

func (c *directCarrier) Read(p []byte) (int, error) { return c.data.Read(p) }

// maxDirectMessage is the most data a message carries. The kubelet reads a
// message as one WebSocket frame (continuation frames would be taken for
// messages of their own), and the client-go dialer's write buffer, 33 KB,
// is where gorilla would split a message into frames.
const maxDirectMessage = 32 << 10

func (c *directCarrier) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxDirectMessage)]
		c.buf = append(append(c.buf[:0], dataChannel), chunk...)
		if err := c.conn.WriteMessage(gwebsocket.BinaryMessage, c.buf); err != nil {
			return written, err
		}
		written += len(chunk)
		p = p[len(chunk):]
	}
	return written, nil
}

// directLinger is how long a direct stream whose client stopped sending
// stays open while the pod sends nothing.
const directLinger = time.Second

// closeWrite cannot be said in this protocol (see ProtocolDirect), and the
// pod side (the kubelet) holds the stream open until we close it. The
// client's end of sending is most often the end of the connection, a close
// that looks the same to us as a half-close: so the stream stays while
// the pod goes on sending (the rest of an answer, to a client that only
// half-closed) and is closed once the pod has been quiet for directLinger.
func (c *directCarrier) closeWrite() error {
	c.lingering.Do(func() {
		go func() {
			tick := time.NewTicker(directLinger / 4)
			defer tick.Stop()
			for {
				select {
				case <-c.ended:
					return
				case <-tick.C:
					if !c.copying.Load() && time.Since(time.Unix(0, c.lastRead.Load())) >= directLinger {
						c.lingered.Store(true)
						c.conn.Close() // demux ends: EOF for the reader
						return
					}
				}
			}
		}()
	})
	return nil
}

func (c *directCarrier) close() {
	// A close frame, best effort and bounded, then the connection.
	_ = c.conn.WriteControl(gwebsocket.CloseMessage, gwebsocket.FormatCloseMessage(gwebsocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.conn.Close()
	c.data.Close()
}
