package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// chunk mirrors what the lifecycle stores for a memory reservation; the
// journal itself never sees this type.
type chunk struct {
	NUMANode int    `json:"numa_node"`
	Bytes    uint64 `json:"bytes"`
}

// sampleRecord is a journal as lwk-prolog leaves it after booting an OS on a
// 2-node machine: every step done, the last one in intent.
func sampleRecord(t *testing.T, jobID uint32) *Record {
	t.Helper()
	rec := &Record{
		JobID:   jobID,
		UID:     1000,
		GID:     1000,
		User:    "alice",
		Created: time.Date(2026, 11, 25, 7, 20, 11, 0, time.UTC),
		Spec:    "mckernel:cpus=2-15,mem=8G",
		Plan:    json.RawMessage(`{"cpus":"2-15","numa":"1","memory":[{"numa_node":1,"bytes":8589934592}],"kargs":"hidos ksyslogd=0"}`),
	}
	require.NoError(t, rec.Begin("reserve_memory", []chunk{{NUMANode: 1, Bytes: 8 << 30}}))
	require.NoError(t, rec.Done("reserve_memory", []chunk{{NUMANode: 1, Bytes: 4 << 30}, {NUMANode: 1, Bytes: 4 << 30}}))
	require.NoError(t, rec.Begin("reserve_cpus", "2-15"))
	require.NoError(t, rec.Done("reserve_cpus", nil))
	require.NoError(t, rec.Begin("create_os", nil))
	require.NoError(t, rec.Done("create_os", map[string]int{"os": 0}))
	require.NoError(t, rec.Begin("boot", map[string]int{"os": 0}))
	return rec
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "journal"))
	require.NoError(t, err)
	return s
}

func TestRoundTrip(t *testing.T) {
	s := openStore(t)
	want := sampleRecord(t, 12)
	require.NoError(t, s.Write(want))
	require.Equal(t, Version, want.Version, "Write sets the version")

	got, err := s.Read(12)
	require.NoError(t, err)
	require.Equal(t, want.JobID, got.JobID)
	require.Equal(t, want.UID, got.UID)
	require.Equal(t, want.GID, got.GID)
	require.Equal(t, want.User, got.User)
	require.True(t, want.Created.Equal(got.Created))
	require.Equal(t, want.Spec, got.Spec)
	require.JSONEq(t, string(want.Plan), string(got.Plan))
	require.Len(t, got.Steps, len(want.Steps))
	for i := range want.Steps {
		require.Equal(t, want.Steps[i].Name, got.Steps[i].Name)
		require.Equal(t, want.Steps[i].State, got.Steps[i].State)
		require.True(t, want.Steps[i].At.Equal(got.Steps[i].At), "step %d time", i)
		require.JSONEq(t, string(want.Steps[i].Data), string(got.Steps[i].Data))
	}

	var chunks []chunk
	st, ok := got.Find("reserve_memory")
	require.True(t, ok)
	require.NoError(t, st.DecodeData(&chunks))
	require.Equal(t, []chunk{{1, 4 << 30}, {1, 4 << 30}}, chunks, "Done replaced the payload")

	last, ok := got.Last()
	require.True(t, ok)
	require.Equal(t, "boot", last.Name)
	require.Equal(t, StateIntent, last.State)

	// Overwrite: the second write replaces the first.
	require.NoError(t, got.Done("boot", nil))
	require.NoError(t, s.Write(got))
	again, err := s.Read(12)
	require.NoError(t, err)
	last, _ = again.Last()
	require.Equal(t, StateDone, last.State)

	ids, err := s.List()
	require.NoError(t, err)
	require.Equal(t, []uint32{12}, ids)
}

func TestFileFormat(t *testing.T) {
	s := openStore(t)
	require.NoError(t, s.Write(sampleRecord(t, 7)))
	data, err := os.ReadFile(s.Path(7))
	require.NoError(t, err)

	header, body, ok := bytes.Cut(data, []byte("\n"))
	require.True(t, ok)
	var sum string
	var n int
	_, err = fmt.Sscanf(string(header), "slurm-lwk-journal v1 sha256=%64s len=%d", &sum, &n)
	require.NoError(t, err)
	require.Equal(t, len(body), n, "len covers exactly the body")
	require.Equal(t, fmt.Sprintf("%x", sha256Sum(body)), sum, "checksum covers exactly the body bytes")
	require.True(t, json.Valid(body))
	require.Equal(t, filepath.Join(s.Dir, "job-7.journal"), s.Path(7))
}

func TestRecordHelpers(t *testing.T) {
	tests := []struct {
		name    string
		do      func(r *Record) error
		wantErr string
	}{
		{name: "begin with empty name", do: func(r *Record) error { return r.Begin("", nil) }, wantErr: "empty step name"},
		{name: "done without begin", do: func(r *Record) error { return r.Done("boot", nil) }, wantErr: "no such step"},
		{name: "done twice", do: func(r *Record) error {
			require.NoError(t, r.Begin("boot", nil))
			require.NoError(t, r.Done("boot", nil))
			return r.Done("boot", nil)
		}, wantErr: "step is done"},
		{name: "unencodable data", do: func(r *Record) error { return r.Begin("boot", make(chan int)) }, wantErr: "encode data"},
		{name: "done marks the last step of that name", do: func(r *Record) error {
			require.NoError(t, r.Begin("assign_cpus", "2-3"))
			require.NoError(t, r.Done("assign_cpus", nil))
			require.NoError(t, r.Begin("assign_cpus", "4-5"))
			require.NoError(t, r.Done("assign_cpus", nil))
			if r.Steps[0].State != StateDone || r.Steps[1].State != StateDone {
				return fmt.Errorf("states %s %s", r.Steps[0].State, r.Steps[1].State)
			}
			st, _ := r.Find("assign_cpus")
			if string(st.Data) != `"4-5"` {
				return fmt.Errorf("Find returned %s", st.Data)
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Record{JobID: 1}
			err := tc.do(r)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}

	var empty Record
	_, ok := empty.Last()
	require.False(t, ok)
	_, ok = empty.Find("boot")
	require.False(t, ok)

	before := time.Now().Add(-time.Second)
	r := &Record{JobID: 1}
	require.NoError(t, r.Begin("boot", nil))
	require.True(t, r.Steps[0].At.After(before))
	require.Equal(t, time.UTC, r.Steps[0].At.Location())
	require.Empty(t, r.Steps[0].Data, "nil data stores no payload")
}

// writeRaw replaces the journal of job id with raw bytes, as a crash or a
// disk error would leave it.
func writeRaw(t *testing.T, s *Store, id uint32, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(s.Path(id), data, 0o600))
}

func TestCorruption(t *testing.T) {
	s := openStore(t)
	require.NoError(t, s.Write(sampleRecord(t, 5)))
	good, err := os.ReadFile(s.Path(5))
	require.NoError(t, err)
	headerLen := bytes.IndexByte(good, '\n') + 1

	// reencode builds a file with a valid header around an arbitrary body.
	reencode := func(body string) []byte {
		return []byte(fmt.Sprintf("slurm-lwk-journal v1 sha256=%x len=%d\n%s", sha256Sum([]byte(body)), len(body), body))
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		return b
	}
	// otherHexDigit replaces a checksum digit with another lower-case hex
	// digit, so the header stays well-formed whatever the checksum is (a
	// bit flip turns 'a' into '`' and 'f' into 'g').
	otherHexDigit := func(i int) []byte {
		b := bytes.Clone(good)
		if b[i] == '0' {
			b[i] = '1'
		} else {
			b[i] = '0'
		}
		return b
	}
	sumAt := len("slurm-lwk-journal v1 sha256=")
	setByte := func(i int, c byte) []byte {
		b := bytes.Clone(good)
		b[i] = c
		return b
	}

	tests := []struct {
		name       string
		data       []byte
		wantReason string
	}{
		{name: "byte flipped in body", data: flip(headerLen + 40), wantReason: "checksum mismatch"},
		{name: "last body byte flipped", data: flip(len(good) - 1), wantReason: "checksum mismatch"},
		{name: "first checksum digit changed", data: otherHexDigit(sumAt), wantReason: "checksum mismatch"},
		{name: "checksum digit changed", data: otherHexDigit(sumAt + 3), wantReason: "checksum mismatch"},
		{name: "last checksum digit changed", data: otherHexDigit(sumAt + 63), wantReason: "checksum mismatch"},
		{name: "checksum digit made non-hex", data: setByte(sumAt+5, 'g'), wantReason: "not 64 lower-case hex digits"},
		{name: "byte flipped in magic", data: flip(2), wantReason: "not a slurm-lwk journal"},
		{name: "byte flipped in length", data: flip(headerLen - 3), wantReason: ""},
		{name: "newline of header flipped", data: flip(headerLen - 1), wantReason: "bad header"},
		{name: "upper-case checksum", data: bytes.Replace(good, good[28:92], bytes.ToUpper(good[28:92]), 1), wantReason: "hex"},
		{name: "empty", data: nil, wantReason: "empty file"},
		{name: "trailing data", data: append(bytes.Clone(good), "{}\n"...), wantReason: "trailing data"},
		{name: "not JSON", data: reencode("not json\n"), wantReason: "bad JSON"},
		{name: "two JSON values", data: reencode(`{"version":1,"job_id":5,"steps":[]} {}`), wantReason: "data after the record"},
		{name: "unknown field", data: reencode(`{"version":1,"job_id":5,"steps":[],"extra":1}`), wantReason: "unknown field"},
		{name: "wrong job ID", data: reencode(`{"version":1,"job_id":6,"steps":[]}`), wantReason: "record is for job 6, file name says job 5"},
		{name: "bad step state", data: reencode(`{"version":1,"job_id":5,"steps":[{"name":"boot","state":"maybe","at":"2026-11-25T07:00:00Z"}]}`), wantReason: "unknown state"},
		{name: "step without name", data: reencode(`{"version":1,"job_id":5,"steps":[{"name":"","state":"done","at":"2026-11-25T07:00:00Z"}]}`), wantReason: "no name"},
		{name: "body version differs from header", data: reencode(`{"version":2,"job_id":5,"steps":[]}`), wantReason: "body version 2"},
		{name: "length with leading zero", data: bytes.Replace(good, []byte(" len="), []byte(" len=0"), 1), wantReason: "bad length"},
		{name: "zero length", data: []byte("slurm-lwk-journal v1 sha256=" + strings.Repeat("0", 64) + " len=0\n"), wantReason: "bad length"},
		{name: "huge length", data: []byte("slurm-lwk-journal v1 sha256=" + strings.Repeat("0", 64) + " len=999999999\n{}"), wantReason: "bad length"},
		{name: "malformed version", data: []byte("slurm-lwk-journal vX sha256=00\n{}"), wantReason: "malformed version"},
		{name: "header without newline", data: bytes.Repeat([]byte("slurm-lwk-journal v1 "), 20), wantReason: "no end of line"},
		{name: "binary garbage", data: []byte{0xff, 0x00, 0x13, 0x37}, wantReason: "not a slurm-lwk journal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			writeRaw(t, s, 5, tc.data)
			rec, err := s.Read(5)
			require.Nil(t, rec)
			var ce *CorruptError
			require.ErrorAs(t, err, &ce)
			require.ErrorIs(t, err, ErrCorrupt)
			require.NotErrorIs(t, err, ErrNotFound)
			require.Equal(t, s.Path(5), ce.Path)
			require.EqualValues(t, 5, ce.JobID)
			require.Contains(t, ce.Reason, tc.wantReason)
			require.Contains(t, err.Error(), "journal "+s.Path(5)+" is corrupt")
			require.Contains(t, err.Error(), "lwkctl cleanup --job 5")
		})
	}
}

func TestTruncationAtEveryLength(t *testing.T) {
	s := openStore(t)
	require.NoError(t, s.Write(sampleRecord(t, 9)))
	good, err := os.ReadFile(s.Path(9))
	require.NoError(t, err)
	require.Greater(t, len(good), 500, "fixture must be a realistic size")

	for n := 0; n < len(good); n++ {
		rec, err := Decode(s.Path(9), 9, good[:n])
		if rec != nil || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("prefix of %d/%d bytes: got record %v, error %v; want *CorruptError", n, len(good), rec != nil, err)
		}
	}
	// The same through the file system for a sample of lengths, including
	// the ones around the header/body boundary.
	hl := bytes.IndexByte(good, '\n')
	for _, n := range []int{0, 1, hl - 1, hl, hl + 1, hl + 2, len(good) / 2, len(good) - 1} {
		writeRaw(t, s, 9, good[:n])
		_, err := s.Read(9)
		var ce *CorruptError
		require.ErrorAs(t, err, &ce, "prefix %d", n)
	}
	// And the whole file still decodes, so the loop above is not vacuous.
	_, err = Decode(s.Path(9), 9, good)
	require.NoError(t, err)
}

func TestVersionMismatch(t *testing.T) {
	s := openStore(t)
	tests := []struct {
		name string
		data string
		got  int
	}{
		{name: "newer header", data: "slurm-lwk-journal v2 sha256=" + strings.Repeat("a", 64) + " len=2\n{}", got: 2},
		{name: "future header layout", data: "slurm-lwk-journal v13 blake3=zz size=2 flags=x\n{}", got: 13},
		{name: "version zero", data: "slurm-lwk-journal v0 \n", got: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			writeRaw(t, s, 3, []byte(tc.data))
			_, err := s.Read(3)
			var ve *VersionError
			require.ErrorAs(t, err, &ve)
			require.ErrorIs(t, err, ErrVersion)
			require.NotErrorIs(t, err, ErrCorrupt)
			require.Equal(t, tc.got, ve.Got)
			require.Equal(t, Version, ve.Want)
			require.Equal(t, s.Path(3), ve.Path)
			require.Contains(t, err.Error(), "lwkctl cleanup --job 3")
		})
	}

	rec := sampleRecord(t, 3)
	rec.Version = 2
	require.ErrorContains(t, s.Write(rec), "record version 2")
}

func TestNotFound(t *testing.T) {
	s := openStore(t)
	_, err := s.Read(42)
	var nf *NotFoundError
	require.ErrorAs(t, err, &nf)
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.NotErrorIs(t, err, ErrCorrupt)
	require.Equal(t, s.Path(42), nf.Path)

	require.NoError(t, s.Remove(42), "removing a missing journal is success")
	require.NoError(t, s.Write(sampleRecord(t, 42)))
	require.NoError(t, s.Remove(42))
	_, err = s.Read(42)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestWriteRejectsBadRecords(t *testing.T) {
	s := openStore(t)
	tests := []struct {
		name    string
		rec     *Record
		wantErr string
	}{
		{name: "nil", rec: nil, wantErr: "nil record"},
		{name: "job 0", rec: &Record{}, wantErr: "job ID 0"},
		{name: "bad plan JSON", rec: &Record{JobID: 1, Plan: json.RawMessage(`{`)}, wantErr: "encode journal of job 1"},
		{name: "bad step state", rec: &Record{JobID: 1, Steps: []Step{{Name: "boot", State: "weird"}}}, wantErr: "unknown state"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorContains(t, s.Write(tc.rec), tc.wantErr)
			ids, err := s.List()
			require.NoError(t, err)
			require.Empty(t, ids)
			requireNoTemps(t, s.Dir)
		})
	}
}

func TestPermissions(t *testing.T) {
	s := openStore(t)
	require.NoError(t, s.Write(sampleRecord(t, 1)))
	fi, err := os.Stat(s.Path(1))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(s.Dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	require.True(t, di.IsDir())

	// The mode is set explicitly, not inherited: after someone made the
	// journal 0644, the next write leaves a 0600 file again.
	require.NoError(t, os.Chmod(s.Path(1), 0o644))
	require.NoError(t, s.Write(sampleRecord(t, 1)))
	fi, err = os.Stat(s.Path(1))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestOpenRefusesUnsafeDirs(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		require.NoError(t, os.Mkdir(p, 0o700))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	file := filepath.Join(base, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	link := filepath.Join(base, "link")
	require.NoError(t, os.Symlink(mk("target", 0o700), link))

	tests := []struct {
		name    string
		dir     string
		wantErr string
	}{
		{name: "relative", dir: "var/lib/journal", wantErr: "clean absolute path"},
		{name: "unclean", dir: base + "/a/../b", wantErr: "clean absolute path"},
		{name: "empty", dir: "", wantErr: "clean absolute path"},
		{name: "world-writable", dir: mk("ww", 0o777), wantErr: "writable by group or others"},
		{name: "group-writable", dir: mk("gw", 0o770), wantErr: "writable by group or others"},
		{name: "sticky world-writable", dir: mk("tmp", 0o1777), wantErr: "writable by group or others"},
		{name: "a file", dir: file, wantErr: "not a directory"},
		{name: "a symlink", dir: link, wantErr: "not a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.dir)
			require.ErrorContains(t, err, tc.wantErr)
			_, err = OpenReader(tc.dir)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}

	t.Run("owned by another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to chown a directory to another user")
		}
		p := mk("other", 0o700)
		require.NoError(t, os.Chown(p, 65534, 65534))
		_, err := Open(p)
		require.ErrorContains(t, err, "owned by uid 65534")
	})

	t.Run("existing 0755 dir is accepted", func(t *testing.T) {
		p := mk("ok", 0o755)
		_, err := Open(p)
		require.NoError(t, err)
	})

	t.Run("creates missing parents", func(t *testing.T) {
		p := filepath.Join(base, "var", "lib", "slurm-lwk", "journal")
		s, err := Open(p)
		require.NoError(t, err)
		di, err := os.Stat(s.Dir)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	})
}

func requireNoTemps(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), tempPrefix), "temp file %s left behind", e.Name())
	}
}

func TestTempFilesCleanedUp(t *testing.T) {
	s := openStore(t)
	for i := 0; i < 5; i++ {
		require.NoError(t, s.Write(sampleRecord(t, 77)))
	}
	requireNoTemps(t, s.Dir)

	// A failing rename (the target is a non-empty directory) leaves the
	// old state and no temp file, and the error names the journal.
	require.NoError(t, os.MkdirAll(filepath.Join(s.Path(78), "x"), 0o700))
	err := s.Write(sampleRecord(t, 78))
	require.ErrorContains(t, err, "write journal "+s.Path(78))
	requireNoTemps(t, s.Dir)

	// Stale temps from a killed writer are ignored by List and removed by
	// RemoveStaleTemps once old enough, never when fresh.
	stale := filepath.Join(s.Dir, tempPrefix+"job-79-0123456789abcdef")
	require.NoError(t, os.WriteFile(stale, []byte("slurm-lwk-jou"), 0o600))
	ids, err := s.List()
	require.NoError(t, err)
	require.Equal(t, []uint32{77}, ids)
	n, err := s.RemoveStaleTemps(time.Hour)
	require.NoError(t, err)
	require.Zero(t, n)
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(stale, old, old))
	n, err = s.RemoveStaleTemps(time.Hour)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	requireNoTemps(t, s.Dir)
}

func TestWriteErrorsPropagate(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "not-a-dir")
	require.NoError(t, os.WriteFile(file, nil, 0o600))

	t.Run("dir is a file", func(t *testing.T) {
		// Works as root too: the kernel refuses to create a file under a
		// regular file whoever asks.
		s := &Store{Dir: file}
		err := s.Write(sampleRecord(t, 1))
		require.ErrorContains(t, err, "write journal "+filepath.Join(file, "job-1.journal"))
		require.ErrorIs(t, err, errNotDir())
	})

	t.Run("dir is missing", func(t *testing.T) {
		s := &Store{Dir: filepath.Join(base, "gone")}
		require.Error(t, s.Write(sampleRecord(t, 1)))
	})

	t.Run("read-only dir", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root ignores directory write permission (CAP_DAC_OVERRIDE); covered by 'dir is a file'")
		}
		s := openStore(t)
		require.NoError(t, os.Chmod(s.Dir, 0o500))
		t.Cleanup(func() { _ = os.Chmod(s.Dir, 0o700) })
		require.ErrorIs(t, s.Write(sampleRecord(t, 1)), fs.ErrPermission)
	})
}

func TestList(t *testing.T) {
	s := openStore(t)
	for _, id := range []uint32{300, 2, 4294967295, 17} {
		require.NoError(t, s.Write(sampleRecord(t, id)))
	}
	// Names that are not journals are ignored.
	for _, name := range []string{"job-017.journal", "job-0.journal", "job--1.journal", "job-4294967296.journal",
		"job-5.journal.bak", "job-5", "job-+5.journal", "job- 5.journal", "lock", "job-.journal"} {
		require.NoError(t, os.WriteFile(filepath.Join(s.Dir, name), nil, 0o600))
	}
	require.NoError(t, os.Mkdir(filepath.Join(s.Dir, "job-6.journal"), 0o700))
	ids, err := s.List()
	require.NoError(t, err)
	require.Equal(t, []uint32{2, 17, 300, 4294967295}, ids)

	_, err = s.Read(0)
	require.ErrorContains(t, err, "job ID 0")
}

func TestReader(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "journal")

	r, err := OpenReader(dir)
	require.NoError(t, err, "a missing dir is an empty journal set")
	ids, err := r.List()
	require.NoError(t, err)
	require.Empty(t, ids)
	_, err = r.Read(1)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, fs.ErrNotExist, "the reader created nothing")

	s, err := Open(dir)
	require.NoError(t, err)
	require.NoError(t, s.Write(sampleRecord(t, 11)))
	r, err = OpenReader(dir)
	require.NoError(t, err)
	ids, err = r.List()
	require.NoError(t, err)
	require.Equal(t, []uint32{11}, ids)
	rec, err := r.Read(11)
	require.NoError(t, err)
	require.Equal(t, "alice", rec.User)
	require.Equal(t, s.Reader().Dir, r.Dir)
}

func TestReadRefusesSymlinkAndSpecialFiles(t *testing.T) {
	s := openStore(t)
	target := filepath.Join(t.TempDir(), "elsewhere")
	require.NoError(t, os.WriteFile(target, nil, 0o600))
	require.NoError(t, os.Symlink(target, s.Path(1)))
	_, err := s.Read(1)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "symbolic link")

	require.NoError(t, os.Mkdir(s.Path(2), 0o700))
	_, err = s.Read(2)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "not a regular file")
}

// TestConcurrentReaders checks that readers racing a writer see either no
// journal yet or a complete, valid record: never a corrupt or partial one.
func TestConcurrentReaders(t *testing.T) {
	s := openStore(t)
	const jobID = 31
	const writes = 150
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	var reads atomic.Int64

	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &Reader{Dir: s.Dir}
			maxSteps := 0
			for !done.Load() {
				rec, err := r.Read(jobID)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				reads.Add(1)
				if len(rec.Steps) < maxSteps {
					errs <- fmt.Errorf("steps went back from %d to %d", maxSteps, len(rec.Steps))
					return
				}
				maxSteps = len(rec.Steps)
			}
		}()
	}

	rec := sampleRecord(t, jobID)
	for i := 0; i < writes; i++ {
		// Grow the record so consecutive files differ in size and content.
		require.NoError(t, rec.Begin(fmt.Sprintf("step-%d", i), strings.Repeat("x", i)))
		require.NoError(t, s.Write(rec))
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Positive(t, reads.Load(), "readers must have read something")
	requireNoTemps(t, s.Dir)
}

// TestFailedWriteLeavesNoTemp fills a small tmpfs as StateDir: the write
// fails with ENOSPC, the old journal stays, and no temp file is left to
// keep the file system full.
func TestFailedWriteLeavesNoTemp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs that fills up")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=32k,mode=0700"); err != nil {
		t.Skipf("cannot mount tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	s, err := Open(dir)
	require.NoError(t, err)
	require.NoError(t, s.Write(sampleRecord(t, 3)))
	before, err := os.ReadFile(s.Path(3))
	require.NoError(t, err)

	big := sampleRecord(t, 3)
	big.Plan = json.RawMessage(`{"pad":"` + strings.Repeat("x", 64<<10) + `"}`)
	err = s.Write(big)
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.ErrorContains(t, err, "write journal "+s.Path(3))
	requireNoTemps(t, s.Dir)
	after, err := os.ReadFile(s.Path(3))
	require.NoError(t, err)
	require.Equal(t, before, after, "the old journal is untouched")
}

// TestEncodeIsMarshal checks that splicing the raw messages gives the bytes
// encoding/json gives for raw messages as it writes them, so that a field
// added where the splice does not expect it (after Record.Steps or
// Step.Data) fails here (set every field in "every field"); raw messages
// json.Marshal would escape or compact differently still mean the same.
func TestEncodeIsMarshal(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  *Record
	}{
		{"every step", sampleRecord(t, 7)},
		{"no plan, no steps", &Record{Version: Version, JobID: 8, User: "bob", Created: time.Unix(1, 0).UTC()}},
		{"empty steps", &Record{Version: Version, JobID: 9, Attempt: 2, Plan: json.RawMessage(`{"a":[1,2]}`), Steps: []Step{}}},
		{"every field", &Record{Version: Version, JobID: 10, UID: 1, GID: 2, User: "carol", Attempt: 3,
			Created: time.Unix(5, 0).UTC(), Spec: "mck:mem=1G", Plan: json.RawMessage(`{"b":true}`),
			Steps: []Step{{Name: "boot", State: StateDone, At: time.Unix(6, 0).UTC(), Data: json.RawMessage(`{"os":0}`)}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.rec.Version = Version
			data, err := Encode(tc.rec)
			require.NoError(t, err)
			want, err := json.Marshal(tc.rec)
			require.NoError(t, err)
			_, body, ok := bytes.Cut(data, []byte("\n"))
			require.True(t, ok)
			require.Equal(t, string(want)+"\n", string(body))
		})
	}
}

func TestEncodeChecksRawMessages(t *testing.T) {
	rec := sampleRecord(t, 7)
	_, err := Encode(rec)
	require.NoError(t, err)

	// A plan replaced by one that is not JSON is caught, though the one
	// before it was checked already.
	good := rec.Plan
	rec.Plan = json.RawMessage(`{"cpus":[1,2}`)
	_, err = Encode(rec)
	require.ErrorContains(t, err, "plan is not valid JSON")
	rec.Plan = good

	// What json.Marshal would escape or compact is kept as it is and
	// means the same.
	rec.Plan = json.RawMessage("{\"kargs\": \"a<b&c>d\"}")
	data, err := Encode(rec)
	require.NoError(t, err)
	dec, err := Decode("p", 7, data)
	require.NoError(t, err)
	require.JSONEq(t, `{"kargs":"a<b&c>d"}`, string(dec.Plan))
	rec.Plan = good

	rec.Steps[1].Data = json.RawMessage(`{"os":`)
	_, err = Encode(rec)
	require.ErrorContains(t, err, "data of step 1")

	// Whitespace in a valid raw message is kept; the journal still reads.
	rec.Steps[1].Data = json.RawMessage("{ \"os\": 0 }")
	s := openStore(t)
	require.NoError(t, s.Write(rec))
	got, err := s.Read(7)
	require.NoError(t, err)
	require.JSONEq(t, `{"os":0}`, string(got.Steps[1].Data))
}
