// Package filetree writes fixture trees for tests: files given by their
// path below a fresh temporary root.
package filetree

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// New writes files (path relative to the root → content) below a new
// temporary directory and returns it; the directory goes with the test.
func New(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return root
}
