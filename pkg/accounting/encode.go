package accounting

import (
	"bytes"
	"compress/gzip"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Prefix starts every stored record; the digit is JobRecordVersion.
const Prefix = "lwk1:"

// MaxEncodedBytes bounds an encoded record: `sacct -o SystemComment%2000`
// shows it whole. Merge's bounds keep real records far below it.
const MaxEncodedBytes = 2000

// maxDecodedBytes bounds what Decode inflates (a hostile gzip bomb stops
// here).
const maxDecodedBytes = 1 << 20

// ErrNoRecord marks a field that holds no slurm-lwk record.
var ErrNoRecord = errors.New("no slurm-lwk record")

// encoding is base32 (RFC 4648) without padding, written in lower case.
// Not base64: Slurm 22.05's sacctmgr stores a job's comment fields in lower
// case ("lwk1:AbC" comes back from sacct as "lwk1:abc"; measured on the
// local cluster), which base64 does not survive and base32 does.
var encoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Encode returns Prefix + lower-case base32(gzip(JSON)) of r: no quotes,
// spaces, upper-case letters or other characters sacctmgr or a shell would
// change. It fails above MaxEncodedBytes.
func Encode(r *JobRecord) (string, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encode record of job %d: %w", r.JobID, err)
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := zw.Write(js); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	s := Prefix + strings.ToLower(encoding.EncodeToString(buf.Bytes()))
	if len(s) > MaxEncodedBytes {
		return "", fmt.Errorf("encode record of job %d: %d bytes, limit %d", r.JobID, len(s), MaxEncodedBytes)
	}
	return s, nil
}

// Decode parses a stored record. The field may hold other text around it
// (an admin's note): the record is the whitespace-separated word starting
// with the prefix. ErrNoRecord when there is none.
func Decode(field string) (*JobRecord, error) {
	var word string
	for _, w := range strings.Fields(field) {
		if strings.HasPrefix(strings.ToLower(w), "lwk") && strings.Contains(w, ":") {
			word = w
			break
		}
	}
	if word == "" {
		return nil, ErrNoRecord
	}
	body, ok := strings.CutPrefix(strings.ToLower(word), Prefix)
	if !ok {
		return nil, fmt.Errorf("record %.12q...: unknown version (this lwkctl reads %q)", word, Prefix)
	}
	raw, err := encoding.DecodeString(strings.ToUpper(body))
	if err != nil {
		return nil, fmt.Errorf("record: base32: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("record: gzip: %w", err)
	}
	js, err := io.ReadAll(io.LimitReader(zr, maxDecodedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("record: gzip: %w", err)
	}
	if len(js) > maxDecodedBytes {
		return nil, fmt.Errorf("record: inflates beyond %d bytes", maxDecodedBytes)
	}
	var r JobRecord
	if err := json.Unmarshal(js, &r); err != nil {
		return nil, fmt.Errorf("record: json: %w", err)
	}
	if r.Version != JobRecordVersion {
		return nil, fmt.Errorf("record: version %d, this lwkctl reads %d", r.Version, JobRecordVersion)
	}
	return &r, nil
}
