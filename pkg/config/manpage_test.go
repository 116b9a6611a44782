package config

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestManPageDocumentsEveryKey keeps man/lwk.conf.5.md in step with the
// parser: every key Parse accepts has a definition there (a line starting
// "**Key**="), and the page defines no key Parse would reject.
func TestManPageDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../man/lwk.conf.5.md")
	if err != nil {
		t.Fatal(err)
	}
	defRE := regexp.MustCompile(`(?m)^\*\*([A-Za-z]+)\*\*=`)
	var documented []string
	for _, m := range defRE.FindAllStringSubmatch(string(b), -1) {
		documented = append(documented, m[1])
	}
	// "**SystemNUMANodes**=*LIST*, **JobNUMANodes**=*LIST*" defines two.
	for _, m := range regexp.MustCompile(`(?m)^\*\*[A-Za-z]+\*\*=[^\n]*, \*\*([A-Za-z]+)\*\*=`).FindAllStringSubmatch(string(b), -1) {
		documented = append(documented, m[1])
	}
	var names []string
	for _, k := range keys {
		names = append(names, k.name)
	}
	for _, k := range profileKeys {
		names = append(names, k.name)
	}
	names = append(names, "Profile")
	for _, k := range names {
		if !slices.Contains(documented, k) {
			t.Errorf("man/lwk.conf.5.md: no definition of %s (a line starting \"**%s**=\")", k, k)
		}
	}
	for _, d := range documented {
		if !slices.ContainsFunc(names, func(k string) bool { return strings.EqualFold(k, d) }) {
			t.Errorf("man/lwk.conf.5.md defines %s, which lwk.conf does not accept", d)
		}
	}
}
