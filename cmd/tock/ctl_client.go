package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// defaultControl is where `tock ctl` looks without --control or
// $TOCK_CONTROL: the control socket of `tock serve` run in this directory.
const defaultControl = "./tock-data/control.sock"

// ctlRequestTimeout bounds one control request.
const ctlRequestTimeout = 30 * time.Second

// ctlClient talks to one tock control server; every request goes through
// send, which turns failures into the two errors below.
type ctlClient struct {
	target string // the address as the user gave it, for messages
	base   string // URL prefix of the requests
	token  string
	hc     *http.Client
}

// unreachableError: no answer from the control server (exit 3).
type unreachableError struct {
	target string
	err    error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach tock at %s (%s): is `tock serve` running? (set --control or TOCK_CONTROL)",
		e.target, shortNetError(e.err))
}

func (e *unreachableError) Unwrap() error { return e.err }

// refusedError: the server answered with an error (exit 1).
type refusedError struct {
	status int
	msg    string
}

func (e *refusedError) Error() string {
	switch e.status {
	case http.StatusUnauthorized:
		return "unauthorized: the control server wants a token (--token or TOCK_CONTROL_TOKEN)"
	case http.StatusForbidden:
		return e.msg + ": check --token or TOCK_CONTROL_TOKEN"
	}
	return e.msg
}

// shortNetError strips the dial details the user already knows.
func shortNetError(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// newCtlClient builds the client from --control, $TOCK_CONTROL (both via
// the flag) or the default, and --token.
func newCtlClient(c *cli.Context) (*ctlClient, error) {
	target := c.String("control")
	if target == "" {
		target = defaultControl
	}
	cl := &ctlClient{target: target, token: c.String("token")}
	tr := &http.Transport{MaxIdleConns: 2, IdleConnTimeout: time.Minute, DisableCompression: true}
	switch {
	case strings.HasPrefix(target, "tcp://"):
		hostport := strings.TrimPrefix(target, "tcp://")
		if _, _, err := net.SplitHostPort(hostport); err != nil {
			return nil, cli.Exit(fmt.Sprintf("usage: --control %q: want tcp://host:port", target), exitUsage)
		}
		cl.base = "http://" + hostport
	case strings.HasPrefix(target, "unix://") || !strings.Contains(target, "://"):
		path := strings.TrimPrefix(target, "unix://")
		if path == "" {
			return nil, cli.Exit(fmt.Sprintf("usage: --control %q: want unix:///path/control.sock", target), exitUsage)
		}
		cl.base = "http://tock"
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
	default:
		return nil, cli.Exit(fmt.Sprintf("usage: --control %q: want unix:///path/control.sock or tcp://host:port", target), exitUsage)
	}
	cl.hc = &http.Client{Transport: tr, Timeout: ctlRequestTimeout}
	return cl, nil
}

// send makes one request with an optional JSON body and returns the reply
// body of a 2xx answer.
func (cl *ctlClient) send(method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, cl.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.token != "" {
		req.Header.Set("Authorization", "Bearer "+cl.token)
	}
	resp, err := cl.hc.Do(req)
	if err != nil {
		return nil, &unreachableError{target: cl.target, err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &unreachableError{target: cl.target, err: err}
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, &refusedError{status: resp.StatusCode, msg: fmt.Sprintf("%s (%d %s)", e.Error, resp.StatusCode, http.StatusText(resp.StatusCode))}
	}
	return b, nil
}

// get fetches path and decodes it into out.
func (cl *ctlClient) get(path string, out any) ([]byte, error) {
	b, err := cl.send(http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("decode %s reply: %w", path, err)
		}
	}
	return b, nil
}

// ctlExit turns an error into the exit code of docs/operations.md: 3 unreachable,
// 2 usage (already a cli.ExitCoder), 1 everything else.
func ctlExit(err error) error {
	if err == nil {
		return nil
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return err
	}
	var ue *unreachableError
	if errors.As(err, &ue) {
		return cli.Exit(ue.Error(), exitUnreachable)
	}
	return cli.Exit(err.Error(), exitRefused)
}

// printJSON writes b (a JSON reply) to stdout, indented.
func printJSON(b []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, bytes.TrimSpace(b), "", "  "); err != nil {
		out.Reset()
		out.Write(b)
	}
	out.WriteByte('\n')
	_, err := os.Stdout.Write(out.Bytes())
	return err
}
