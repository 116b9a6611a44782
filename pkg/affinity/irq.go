package affinity

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// IRQDir is the interrupt directory, relative to the root.
const IRQDir = "proc/irq"

// IRQ is one /proc/irq/N.
type IRQ struct {
	// Number is N.
	Number int
	// Affinity is smp_affinity_list.
	Affinity cpuset.CPUSet
	// Handlers are the names of the handlers registered on it (its
	// subdirectories), sorted; empty for an unused IRQ.
	Handlers []string
}

// ReadIRQs reads every /proc/irq/N below root, ascending.
func ReadIRQs(root string) ([]IRQ, error) {
	dir := filepath.Join(root, IRQDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []IRQ
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n < 0 || !e.IsDir() {
			continue
		}
		irq := IRQ{Number: n}
		p := filepath.Join(dir, e.Name(), "smp_affinity_list")
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if irq.Affinity, err = cpuset.Parse(strings.TrimSpace(string(b))); err != nil {
			return nil, fmt.Errorf("parse %s: %w", p, err)
		}
		sub, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		for _, s := range sub {
			if s.IsDir() {
				irq.Handlers = append(irq.Handlers, s.Name())
			}
		}
		out = append(out, irq)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// SetIRQAffinity writes smp_affinity_list of IRQ n. The file must exist.
func SetIRQAffinity(root string, n int, cpus cpuset.CPUSet) error {
	if cpus.IsEmpty() {
		return fmt.Errorf("irq %d: empty affinity", n)
	}
	p := filepath.Join(root, IRQDir, strconv.Itoa(n), "smp_affinity_list")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("set irq %d affinity %s: %w", n, cpus, err)
	}
	_, err = f.WriteString(cpus.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("set irq %d affinity %s: %w", n, cpus, err)
	}
	return nil
}
