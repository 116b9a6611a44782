package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns their paths and the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "lwk-monitor test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile, cert
}

// TestWebConfigTLSAndBasicAuth: with an exporter-toolkit web configuration
// giving a certificate and a bcrypt-hashed user, the monitor's endpoint
// answers only over TLS and only to that user's password.
func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	require.NoError(t, err)
	conf := filepath.Join(dir, "web.yml")
	require.NoError(t, os.WriteFile(conf, []byte("tls_server_config:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+
		"\nbasic_auth_users:\n  accountant: "+string(hash)+"\n"), 0o600))

	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "lwk_up 1\n") })
	w, err := startWeb(h, []string{"127.0.0.1:0"}, conf, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer func() { require.NoError(t, w.shutdown()) }()
	require.Len(t, w.addrs, 1)
	addr := w.addrs[0].String()

	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	get := func(url, user, pass string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, user, pass string
		code             int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong password", "accountant", "guess", http.StatusUnauthorized},
		{"unknown user", "root", "s3cret", http.StatusUnauthorized},
		{"the configured user", "accountant", "s3cret", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get("https://"+addr+"/metrics", tc.user, tc.pass)
			require.Equal(t, tc.code, code)
			if tc.code == http.StatusOK {
				require.Equal(t, "lwk_up 1\n", body)
			} else {
				require.NotContains(t, body, "lwk_up")
			}
		})
	}

	// Plain HTTP gets no metrics.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/metrics")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "plain HTTP to a TLS port")
		require.NotContains(t, string(b), "lwk_up")
	}
}

// TestWebConfigRejected: a broken web configuration stops the monitor
// before it serves anything.
func TestWebConfigRejected(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "web.yml")
	require.NoError(t, os.WriteFile(conf, []byte("tls_server_config:\n  cert_file: /nonexistent/cert.pem\n"), 0o600))
	_, err := startWeb(http.NotFoundHandler(), []string{"127.0.0.1:0"}, conf, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "--web.config.file "+conf)
}
