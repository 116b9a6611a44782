package cpuhotplug

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Writer sets CPUs online or offline below one root.
type Writer struct {
	root string
}

// New returns a Writer for the tree below root ("" means "/").
func New(root string) Writer {
	if root == "" {
		root = "/"
	}
	return Writer{root: root}
}

func (w Writer) path(cpu int) string {
	return filepath.Join(w.root, "sys/devices/system/cpu", "cpu"+strconv.Itoa(cpu), "online")
}

// Online reports whether cpu is online; a CPU without an online file is
// online (it cannot be hot-unplugged).
func (w Writer) Online(cpu int) (bool, error) {
	b, err := os.ReadFile(w.path(cpu))
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	switch strings.TrimSpace(string(b)) {
	case "1":
		return true, nil
	case "0":
		return false, nil
	}
	return false, fmt.Errorf("parse %s: %q: want 0 or 1", w.path(cpu), strings.TrimSpace(string(b)))
}

// Set takes cpu offline (online false) or brings it online. Setting the
// state a CPU already has is a no-op; the kernel refuses some CPUs (EBUSY,
// the last online CPU; EPERM/ENOENT, no online file).
func (w Writer) Set(cpu int, online bool) error {
	if cpu < 0 {
		return fmt.Errorf("cpu %d: negative", cpu)
	}
	cur, err := w.Online(cpu)
	if err != nil {
		return err
	}
	if cur == online {
		return nil
	}
	v := "0"
	if online {
		v = "1"
	}
	f, err := os.OpenFile(w.path(cpu), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("cpu %d online=%s: %w", cpu, v, err)
	}
	_, err = f.WriteString(v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cpu %d online=%s: %w", cpu, v, err)
	}
	return nil
}

// SetAll sets every CPU of cpus, in order; on the first failure it puts
// back the ones it changed and returns the error.
func (w Writer) SetAll(cpus []int, online bool) error {
	var changed []int
	for _, c := range cpus {
		was, err := w.Online(c)
		if err == nil && was != online {
			err = w.Set(c, online)
			if err == nil {
				changed = append(changed, c)
			}
		}
		if err != nil {
			var errs []error
			for i := len(changed) - 1; i >= 0; i-- {
				if rerr := w.Set(changed[i], !online); rerr != nil {
					errs = append(errs, rerr)
				}
			}
			return errors.Join(append([]error{err}, errs...)...)
		}
	}
	return nil
}
