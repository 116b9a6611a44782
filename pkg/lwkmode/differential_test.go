package lwkmode

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDifferentialC builds the SPANK shim's grammar check (spank/grammar.c)
// and checks that it accepts and rejects exactly what Parse does, with the
// same key at fault, on random specs built from grammar fragments and stray
// bytes. It needs a C compiler; set LWK_REQUIRE_CC=1 to fail instead of
// skipping without one (CI does).
func TestDifferentialC(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		if os.Getenv("LWK_REQUIRE_CC") == "1" {
			t.Fatalf("no C compiler: %v", err)
		}
		t.Skip("no C compiler (cc) to build spank/grammar.c; set LWK_REQUIRE_CC=1 to make this fatal")
	}
	bin := filepath.Join(t.TempDir(), "decide")
	out, err := exec.Command(cc, "-std=gnu11", "-O1", "-Wall", "-Wextra", "-Werror", "-o", bin,
		"../../spank/test_grammar.c", "../../spank/grammar.c").CombinedOutput()
	require.NoError(t, err, "build C grammar check: %s", out)

	rng := rand.New(rand.NewPCG(1, 2))
	specs := make([]string, 0, 30000)
	for range cap(specs) {
		specs = append(specs, randomSpec(rng))
	}
	var in bytes.Buffer
	for _, s := range specs {
		in.WriteString(hex.EncodeToString([]byte(s)) + "\n")
	}
	cmd := exec.Command(bin, "--decide")
	cmd.Stdin = &in
	stdout, err := cmd.Output()
	require.NoError(t, err)

	sc := bufio.NewScanner(bytes.NewReader(stdout))
	accepted := 0
	for i := 0; sc.Scan(); i++ {
		require.Less(t, i, len(specs))
		_, perr := Parse(specs[i])
		want := "ok"
		if perr != nil {
			var pe *ParseError
			require.True(t, errors.As(perr, &pe))
			key := pe.Key
			if key == "" {
				key = "-"
			}
			want = "bad " + key
		} else {
			accepted++
		}
		require.Equal(t, want, sc.Text(), "spec %q (Go: %v)", specs[i], perr)
	}
	require.NoError(t, sc.Err())
	// The generator must exercise both sides.
	require.Greater(t, accepted, len(specs)/20)
	require.Less(t, accepted, len(specs)*19/20)
}

// randomSpec joins grammar fragments, sometimes corrupted.
func randomSpec(rng *rand.Rand) string {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	var b strings.Builder
	switch rng.IntN(10) {
	case 0:
		b.WriteString(pick("", "off", "default", "OFF", "Default", "x"))
	default:
		b.WriteString(pick("mck", "mck-big", "a", "M.2_x", "9x", "_a", "", "off", "default", "dEfAuLt",
			strings.Repeat("p", 32), strings.Repeat("p", 33)))
	}
	if rng.IntN(8) != 0 {
		b.WriteString(pick(":", ":", ":", "", "::"))
		n := rng.IntN(5)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(pick(",", ",", ",", ",,", ""))
			}
			key := pick("mem", "cores", "numa", "kargs", "mem", "kargs", "foo", "", "MEM")
			b.WriteString(key)
			b.WriteString(pick("=", "=", "=", "", "=="))
			switch key {
			case "mem":
				b.WriteString(pick("8G", "8g", "512M", "0G", "60%", "0%", "100%", "101%", "8", "8X", "8GB",
					"18446744073709551615B", "18446744073709551616B", "16777216T", "1.5G", "%", "G", ""))
			case "cores":
				b.WriteString(pick("1", "14", "0", "65535", "65536", "-1", "2k", "00012", "99999999999999999999999", ""))
			case "numa":
				b.WriteString(pick("strict", "near", "far", "Strict", ""))
			default:
				nk := 1 + rng.IntN(3)
				for j := 0; j < nk; j++ {
					if j > 0 {
						b.WriteString(pick("+", "+", "++"))
					}
					b.WriteString(pick("idle_halt", "dump_level=24", "a.b-c", "=x", "-x", ".x", "_x", "9", "a:b", "a%b", ""))
				}
			}
		}
	}
	s := b.String()
	// Corrupt some: a stray byte anywhere, or padding up to the limit.
	switch rng.IntN(12) {
	case 0:
		pos := rng.IntN(len(s) + 1)
		s = s[:pos] + pick(";", " ", "\n", "\x00", "é", "$", "\\", "\"", "'", "*", "\x7f", "#", "/") + s[pos:]
	case 1:
		if n := MaxSpecLen - len(s) + rng.IntN(3) - 1; n > 0 {
			s += pick(",kargs=", "") + strings.Repeat("k", n)
		}
	}
	return s
}
