package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// SimulatorName is written into every device stand-in so that nobody takes
// it for a real IHK device.
const SimulatorName = "slurm-lwk ihk/sim (simulated IHK device)"

// maxDeviceBytes bounds how much of a device stand-in is read. The job user
// may write to the file, so its size is not trusted.
const maxDeviceBytes = 1 << 20

// maxUsageRecords bounds the usage records kept across a rewrite.
const maxUsageRecords = 4096

// deviceLockTimeout bounds the wait for another process's record lock on a
// device stand-in.
const deviceLockTimeout = 2 * time.Second

// Timeline is a booted instance's progress, as wall-clock instants in Unix
// nanoseconds; zero means "not (yet) happened". Status is derived from it at
// the time of asking, so every process sees the boot progress without a
// daemon.
type Timeline struct {
	// BootNS is when BOOT was issued (status BOOTING from then on).
	BootNS int64 `json:"boot_ns"`
	// BootedNS, ReadyNS and RunningNS are when the instance reaches BOOTED,
	// READY (the BOOT call returns) and RUNNING.
	BootedNS  int64 `json:"booted_ns"`
	ReadyNS   int64 `json:"ready_ns"`
	RunningNS int64 `json:"running_ns"`
	// FailedNS is when a (simulated) panic happened: status FAILED.
	FailedNS int64 `json:"failed_ns,omitempty"`
	// HungNS is when the hang detector declared the instance HUNGUP.
	HungNS int64 `json:"hung_ns,omitempty"`
	// FreezeNS and FrozenNS bracket FREEZING; both zero when thawed.
	FreezeNS int64 `json:"freeze_ns,omitempty"`
	FrozenNS int64 `json:"frozen_ns,omitempty"`
}

// Status derives the instance's status at now. A nil timeline means the
// instance is not booted.
func (tl *Timeline) Status(now time.Time) ihk.Status {
	if tl == nil {
		return ihk.StatusNotBooted
	}
	t := now.UnixNano()
	switch {
	case tl.HungNS != 0:
		return ihk.StatusHungup
	case tl.FailedNS != 0:
		return ihk.StatusFailed
	case t < tl.BootedNS:
		return ihk.StatusBooting
	case t < tl.ReadyNS:
		return ihk.StatusBooted
	case t < tl.RunningNS:
		return ihk.StatusReady
	case tl.FreezeNS != 0 && t < tl.FrozenNS:
		return ihk.StatusFreezing
	case tl.FreezeNS != 0:
		return ihk.StatusFrozen
	}
	return ihk.StatusRunning
}

// DeviceInfo is the JSON document on the first line of a device stand-in
// DevDir/mcosN. The simulator rewrites it whenever the instance changes; the
// mcexec stand-in, which runs as the job user with read-write access to
// that file only, reads it to find the instance's CPUs and status. The
// simulator never reads it back: its own state is in the state directory.
type DeviceInfo struct {
	// Simulator is SimulatorName.
	Simulator string `json:"simulator"`
	// Index is the OS instance index N.
	Index int `json:"index"`
	// CPUs are the assigned Linux CPUs in LWK order.
	CPUs []int `json:"cpus"`
	// Memory lists the assigned memory chunks.
	Memory []ihk.MemChunk `json:"memory"`
	// BootID identifies the current boot; usage records of other boots are
	// ignored. Empty when not booted.
	BootID string `json:"boot_id,omitempty"`
	// Timeline is the boot progress; nil when not booted.
	Timeline *Timeline `json:"timeline,omitempty"`
}

// Status is the instance's status at now.
func (d *DeviceInfo) Status(now time.Time) ihk.Status { return d.Timeline.Status(now) }

// UsageRecord is one finished program's resource usage, appended as a JSON
// line to the device stand-in by the mcexec stand-in. The job user can
// write anything to that file, so records only ever inflate that user's own
// job's statistics; malformed lines are skipped.
type UsageRecord struct {
	// BootID is the DeviceInfo.BootID the program ran under.
	BootID string `json:"boot_id"`
	// PID is the program's Linux PID.
	PID int `json:"pid"`
	// UserNS and SystemNS are the program's CPU time, children included.
	// Units: ns.
	UserNS   uint64 `json:"user_ns"`
	SystemNS uint64 `json:"system_ns"`
	// MaxRSSBytes is the program's peak resident set. Units: bytes.
	MaxRSSBytes uint64 `json:"max_rss_bytes"`
}

// ofdLock takes an open-file-description record lock on the whole file.
// These locks are independent of flock(2) (which marks holders), so the
// simulator can rewrite a file that mcexec stand-ins hold with LOCK_SH.
func ofdLock(f *os.File, write bool, timeout time.Duration) error {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart}
	if write {
		lk.Type = unix.F_WRLCK
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lock %s: held by another process for %v: %w", f.Name(), timeout, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func ofdUnlock(f *os.File) {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: io.SeekStart}
	_ = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

// ReadDevice reads the device document and the usage records of its current
// boot from an open device stand-in.
func ReadDevice(f *os.File) (*DeviceInfo, []UsageRecord, error) {
	if err := ofdLock(f, false, deviceLockTimeout); err != nil {
		return nil, nil, err
	}
	data, err := readAllAt(f)
	ofdUnlock(f)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	info, recs, err := parseDevice(data)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return info, recs, nil
}

func readAllAt(f *os.File) ([]byte, error) {
	return io.ReadAll(io.NewSectionReader(f, 0, maxDeviceBytes))
}

// parseDevice splits a stand-in's content into its document and the usage
// records that belong to the document's boot.
func parseDevice(data []byte) (*DeviceInfo, []UsageRecord, error) {
	first, rest, _ := bytes.Cut(data, []byte("\n"))
	var info DeviceInfo
	if err := json.Unmarshal(first, &info); err != nil {
		return nil, nil, fmt.Errorf("device document: %w", err)
	}
	if info.Simulator != SimulatorName {
		return nil, nil, fmt.Errorf("device document: not written by the simulator")
	}
	var recs []UsageRecord
	sc := bufio.NewScanner(bytes.NewReader(rest))
	for sc.Scan() {
		var r UsageRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil || info.BootID == "" || r.BootID != info.BootID {
			continue
		}
		recs = append(recs, r)
	}
	return &info, recs, nil
}

// AppendUsage appends a usage record to an open device stand-in.
func AppendUsage(f *os.File, rec UsageRecord) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := ofdLock(f, true, deviceLockTimeout); err != nil {
		return err
	}
	defer ofdUnlock(f)
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("append usage to %s: %w", f.Name(), err)
	}
	if _, err := f.WriteAt(append(line, '\n'), end); err != nil {
		return fmt.Errorf("append usage to %s: %w", f.Name(), err)
	}
	return nil
}

// writeDevice rewrites the document of the stand-in at path in place (same
// inode, owner and mode, so holders and the job user's access survive),
// keeping the usage records of the document's boot.
func writeDevice(path string, info *DeviceInfo) error {
	doc, err := json.Marshal(info)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("write device %s: %w", path, err)
	}
	defer f.Close()
	if err := ofdLock(f, true, deviceLockTimeout); err != nil {
		return fmt.Errorf("write device %s: %w", path, err)
	}
	defer ofdUnlock(f)
	old, err := readAllAt(f)
	if err != nil {
		return fmt.Errorf("write device %s: %w", path, err)
	}
	var buf bytes.Buffer
	buf.Write(doc)
	buf.WriteByte('\n')
	if prev, recs, err := parseDevice(old); err == nil && prev.BootID == info.BootID {
		if len(recs) > maxUsageRecords {
			recs = recs[len(recs)-maxUsageRecords:]
		}
		for _, r := range recs {
			line, _ := json.Marshal(r)
			buf.Write(line)
			buf.WriteByte('\n')
		}
	}
	if _, err := f.WriteAt(buf.Bytes(), 0); err != nil {
		return fmt.Errorf("write device %s: %w", path, err)
	}
	if err := f.Truncate(int64(buf.Len())); err != nil {
		return fmt.Errorf("write device %s: %w", path, err)
	}
	return nil
}
