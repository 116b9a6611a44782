package journal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// magic starts every journal file; the format version follows it.
const magic = "slurm-lwk-journal "

// maxHeaderBytes bounds the header line (it is about 110 bytes).
const maxHeaderBytes = 256

// MaxBodyBytes bounds a journal body. A record is a few kilobytes; anything
// near this is not a journal. Units: bytes.
const MaxBodyBytes = 16 << 20

// Encode serialises rec into the on-disk form: the header line, then the JSON
// body whose exact bytes the header's checksum and length cover. rec.Version
// must be 0 (meaning Version) or Version.
func Encode(rec *Record) ([]byte, error) {
	if rec.JobID == 0 {
		return nil, errors.New("encode journal: job ID 0")
	}
	if rec.Version != 0 && rec.Version != Version {
		return nil, fmt.Errorf("encode journal of job %d: record version %d, this build writes %d", rec.JobID, rec.Version, Version)
	}
	out := *rec
	out.Version = Version
	if err := out.validate(); err != nil {
		return nil, fmt.Errorf("encode journal of job %d: %w", rec.JobID, err)
	}
	body, err := encodeBody(&out, rec)
	if err != nil {
		return nil, fmt.Errorf("encode journal of job %d: %w", rec.JobID, err)
	}
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("encode journal of job %d: body is %d bytes, limit %d", rec.JobID, len(body), MaxBodyBytes)
	}
	sum := sha256.Sum256(body)
	header := fmt.Sprintf("%sv%d sha256=%s len=%d\n", magic, Version, hex.EncodeToString(sum[:]), len(body))
	return append([]byte(header), body...), nil
}

// stepsNull ends json.Marshal's encoding of a Record whose Steps are nil:
// Steps is Record's last field.
const stepsNull = `"steps":null}`

// encodeBody is the JSON of rec plus a newline, as json.Marshal writes it
// (compact: the journal is rewritten at every step, and indenting a
// 511-CPU plan's CPU order made each write 23 KB instead of 4 KB), except
// that the plan and the step payloads are copied as they are instead of
// being compacted and HTML-escaped again at every write: a 1024-CPU plan is
// about 16 KB, and scanning it a dozen times per prolog was most of the
// journal's cost. The bytes are those of json.Marshal when the raw
// messages are as json.Marshal writes them (the lifecycle's are); they
// mean the same in any case. Each raw message is checked to be valid JSON
// once; orig remembers which were (see Record.checked), so Encode must
// not run on one record from two goroutines at once.
func encodeBody(rec, orig *Record) ([]byte, error) {
	checked := make(map[*byte]int, len(rec.Steps)+1)
	raw := func(name string, m json.RawMessage) error {
		if len(m) == 0 {
			return nil
		}
		if n, ok := orig.checked[&m[0]]; !ok || n != len(m) {
			if !json.Valid(m) {
				return fmt.Errorf("%s is not valid JSON", name)
			}
		}
		checked[&m[0]] = len(m)
		return nil
	}
	// The record without its plan (omitted when empty) and steps, then
	// the plan and the steps spliced in where json.Marshal puts them.
	bare := *rec
	bare.Plan, bare.Steps = nil, nil
	head, err := json.Marshal(&bare)
	if err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(head, []byte(stepsNull)) {
		return nil, fmt.Errorf("record encodes as %q..., not ending with the steps", head[max(0, len(head)-40):])
	}
	size := len(head) + len(rec.Plan) + 32
	for _, s := range rec.Steps {
		size += len(s.Data) + 96
	}
	body := make([]byte, 0, size)
	body = append(body, head[:len(head)-len(stepsNull)]...)
	if len(rec.Plan) > 0 {
		if err := raw("plan", rec.Plan); err != nil {
			return nil, err
		}
		body = append(body, `"plan":`...)
		body = append(body, rec.Plan...)
		body = append(body, ',')
	}
	body = append(body, `"steps":`...)
	if rec.Steps == nil {
		body = append(body, "null"...)
	} else {
		body = append(body, '[')
		for i, s := range rec.Steps {
			if i > 0 {
				body = append(body, ',')
			}
			data := s.Data
			s.Data = nil // omitted: Data is Step's last field
			sh, err := json.Marshal(&s)
			if err != nil {
				return nil, err
			}
			body = append(body, sh[:len(sh)-1]...)
			if len(data) > 0 {
				if err := raw(fmt.Sprintf("data of step %d (%s)", i, s.Name), data); err != nil {
					return nil, err
				}
				body = append(body, `,"data":`...)
				body = append(body, data...)
			}
			body = append(body, '}')
		}
		body = append(body, ']')
	}
	body = append(body, "}\n"...)
	orig.checked = checked
	return body, nil
}

// Decode parses the on-disk form of the journal of job jobID read from path
// (path and jobID only label errors and check the record's job ID). Any
// defect yields a *CorruptError, a foreign format version a *VersionError;
// Decode never panics on any input.
func Decode(path string, jobID uint32, data []byte) (*Record, error) {
	corrupt := func(format string, a ...any) error {
		return &CorruptError{Path: path, JobID: jobID, Reason: fmt.Sprintf(format, a...)}
	}
	if len(data) == 0 {
		return nil, corrupt("empty file")
	}
	if !bytes.HasPrefix(data, []byte(magic)) {
		if len(data) < len(magic) && bytes.HasPrefix([]byte(magic), data) {
			return nil, corrupt("truncated in header after %d bytes", len(data))
		}
		return nil, corrupt("bad header: not a slurm-lwk journal")
	}

	// Version first, so that a future format with a different header is
	// reported as a version mismatch rather than as corruption.
	rest := data[len(magic):]
	ver, n, complete, ok := parseVersion(rest)
	if !ok {
		return nil, corrupt("bad header: malformed version")
	}
	if !complete {
		return nil, corrupt("truncated in header after %d bytes", len(data))
	}
	if ver != Version {
		return nil, &VersionError{Path: path, JobID: jobID, Got: ver, Want: Version}
	}
	rest = rest[n:]

	nl := bytes.IndexByte(rest, '\n')
	if nl < 0 {
		if len(data) < maxHeaderBytes {
			return nil, corrupt("truncated in header after %d bytes", len(data))
		}
		return nil, corrupt("bad header: no end of line in the first %d bytes", maxHeaderBytes)
	}
	if len(magic)+n+nl+1 > maxHeaderBytes {
		return nil, corrupt("bad header: longer than %d bytes", maxHeaderBytes)
	}
	sum, length, err := parseHeaderFields(string(rest[:nl]))
	if err != nil {
		return nil, corrupt("bad header: %v", err)
	}
	body := rest[nl+1:]
	switch {
	case len(body) < length:
		return nil, corrupt("truncated: body has %d of %d bytes", len(body), length)
	case len(body) > length:
		return nil, corrupt("trailing data: %d bytes after the %d-byte body", len(body)-length, length)
	}
	got := sha256.Sum256(body)
	if !bytes.Equal(got[:], sum) {
		return nil, corrupt("checksum mismatch")
	}

	var rec Record
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return nil, corrupt("bad JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, corrupt("bad JSON body: data after the record")
	}
	if rec.Version != Version {
		return nil, corrupt("body version %d does not match header version %d", rec.Version, Version)
	}
	if rec.JobID != jobID {
		return nil, corrupt("record is for job %d, file name says job %d", rec.JobID, jobID)
	}
	if err := rec.validate(); err != nil {
		return nil, corrupt("invalid record: %v", err)
	}
	return &rec, nil
}

// parseVersion reads "v<digits> " at the start of b. complete is false when b
// ends before the space that closes the version; ok is false when the bytes
// cannot be a version at all.
func parseVersion(b []byte) (ver, n int, complete, ok bool) {
	if len(b) == 0 {
		return 0, 0, false, true
	}
	if b[0] != 'v' {
		return 0, 0, false, false
	}
	i := 1
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
		if i > 10 {
			return 0, 0, false, false
		}
	}
	if i == len(b) {
		return 0, 0, false, true
	}
	if i == 1 || b[i] != ' ' {
		return 0, 0, false, false
	}
	v, err := strconv.Atoi(string(b[1:i]))
	if err != nil {
		return 0, 0, false, false
	}
	return v, i + 1, true, true
}

// parseHeaderFields parses "sha256=<64 lower-case hex> len=<decimal>".
func parseHeaderFields(s string) (sum []byte, length int, err error) {
	const shaKey, lenKey = "sha256=", " len="
	if len(s) < len(shaKey)+64+len(lenKey)+1 || s[:len(shaKey)] != shaKey {
		return nil, 0, errors.New("want sha256=<hex> len=<n>")
	}
	hexSum := s[len(shaKey) : len(shaKey)+64]
	for _, c := range hexSum {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return nil, 0, errors.New("checksum is not 64 lower-case hex digits")
		}
	}
	sum, err = hex.DecodeString(hexSum)
	if err != nil {
		return nil, 0, fmt.Errorf("checksum: %w", err)
	}
	s = s[len(shaKey)+64:]
	if s[:len(lenKey)] != lenKey {
		return nil, 0, errors.New("want len=<n> after the checksum")
	}
	digits := s[len(lenKey):]
	if len(digits) > 9 || (len(digits) > 1 && digits[0] == '0') {
		return nil, 0, fmt.Errorf("bad length %q", digits)
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, 0, fmt.Errorf("bad length %q", digits)
		}
	}
	length, err = strconv.Atoi(digits)
	if err != nil || length == 0 || length > MaxBodyBytes {
		return nil, 0, fmt.Errorf("bad length %q", digits)
	}
	return sum, length, nil
}
