package accounting_test

import (
	"context"
	"net"
	"net/http"
)

// loopback sends every request to addr, whatever its host name.
func loopback(addr string) *http.Transport {
	d := &net.Dialer{}
	return &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}, DisableKeepAlives: true}
}
