package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the record and file format version this package writes and
// reads. Bump it when the body's meaning changes; old files then fail with a
// *VersionError instead of being misread.
const Version = 1

// StepState is where a journaled side effect stands.
type StepState string

// Step states. A step is written as StateIntent before its side effect is
// attempted and set to StateDone once the side effect succeeded. Teardown
// marks nothing: it removes the journal once the node is clean.
const (
	StateIntent StepState = "intent"
	StateDone   StepState = "done"
)

// Valid reports whether s is one of the defined step states.
func (s StepState) Valid() bool {
	switch s {
	case StateIntent, StateDone:
		return true
	}
	return false
}

// Step is one journaled side effect.
type Step struct {
	// Name names the operation ("reserve_memory", "create_os", ...). The
	// journal does not interpret it.
	Name string `json:"name"`
	// State is where the step stands.
	State StepState `json:"state"`
	// At is when the step last changed state (UTC).
	At time.Time `json:"at"`
	// Data is the step's payload, opaque to the journal (e.g. the OS index
	// or the memory chunks actually reserved). Empty when there is none.
	// Replace it, never modify its bytes in place (see Record.checked).
	// It stays Step's last field: Encode splices it in there.
	Data json.RawMessage `json:"data,omitempty"`
}

// Record is the whole journal of one job on this node.
type Record struct {
	// Version is the format version; Write sets it to Version when zero.
	Version int `json:"version"`
	// JobID is the Slurm job ID; it also names the file.
	JobID uint32 `json:"job_id"`
	// UID and GID are the job owner's numeric IDs.
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	// User is the job owner's name as Slurm reported it.
	User string `json:"user"`
	// Attempt is the job's restart count (SLURM_JOB_RESTART_COUNT) the
	// prolog ran for; with package jobend it tells whether this attempt's
	// epilog has already run.
	Attempt uint32 `json:"attempt,omitempty"`
	// Created is when the prolog started the record.
	Created time.Time `json:"created"`
	// Spec is the job's --lwk-mode specification as given.
	Spec string `json:"spec"`
	// Plan is the partition plan, opaque to the journal. Replace it,
	// never modify its bytes in place (see Record.checked).
	Plan json.RawMessage `json:"plan,omitempty"`
	// Steps are the side effects in the order they were begun. It stays
	// Record's last encoded field: Encode splices the steps in there.
	Steps []Step `json:"steps"`

	// checked remembers the raw messages (the plan, the step payloads)
	// Encode found valid, by the address of their first byte and their
	// length, so that a rewrite does not scan an unchanged plan again.
	// Plan and Data are replaced, never modified in place.
	checked map[*byte]int
}

// now is the one place the record helpers read the clock: step times are UTC.
func now() time.Time { return time.Now().UTC() }

// marshalData encodes a step payload. nil means "no payload". A
// json.RawMessage is validated and compacted like any other value.
func marshalData(data any) (json.RawMessage, error) {
	if data == nil {
		return nil, nil
	}
	if raw, ok := data.(json.RawMessage); ok && raw == nil {
		return nil, nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Begin appends a step called name in state intent with data as its payload
// (nil for none). Call it, then Write the record, before attempting the side
// effect.
func (r *Record) Begin(name string, data any) error {
	if name == "" {
		return errors.New("begin step: empty step name")
	}
	raw, err := marshalData(data)
	if err != nil {
		return fmt.Errorf("begin step %s: encode data: %w", name, err)
	}
	r.Steps = append(r.Steps, Step{Name: name, State: StateIntent, At: now(), Data: raw})
	return nil
}

// Done marks the last step called name as done. A non-nil data replaces the
// step's payload (e.g. with what the side effect actually produced); nil
// keeps the payload given to Begin. The step must be in state intent.
func (r *Record) Done(name string, data any) error {
	return r.transition(name, data, StateDone, StateIntent)
}

func (r *Record) transition(name string, data any, to StepState, from ...StepState) error {
	i := r.lastIndex(name)
	if i < 0 {
		return fmt.Errorf("mark step %s %s: no such step in journal of job %d", name, to, r.JobID)
	}
	st := &r.Steps[i]
	allowed := false
	for _, f := range from {
		if st.State == f {
			allowed = true
		}
	}
	if !allowed {
		return fmt.Errorf("mark step %s %s: step is %s in journal of job %d", name, to, st.State, r.JobID)
	}
	raw, err := marshalData(data)
	if err != nil {
		return fmt.Errorf("mark step %s %s: encode data: %w", name, to, err)
	}
	if raw != nil {
		st.Data = raw
	}
	st.State = to
	st.At = now()
	return nil
}

func (r *Record) lastIndex(name string) int {
	for i := len(r.Steps) - 1; i >= 0; i-- {
		if r.Steps[i].Name == name {
			return i
		}
	}
	return -1
}

// Last returns the most recently begun step, and false if there is none.
func (r *Record) Last() (Step, bool) {
	if len(r.Steps) == 0 {
		return Step{}, false
	}
	return r.Steps[len(r.Steps)-1], true
}

// Find returns the most recently begun step called name, and false if there
// is none.
func (r *Record) Find(name string) (Step, bool) {
	i := r.lastIndex(name)
	if i < 0 {
		return Step{}, false
	}
	return r.Steps[i], true
}

// DecodeData decodes the step's payload into v. A step without payload
// leaves v untouched and returns nil.
func (s Step) DecodeData(v any) error {
	if len(s.Data) == 0 {
		return nil
	}
	if err := json.Unmarshal(s.Data, v); err != nil {
		return fmt.Errorf("decode data of step %s: %w", s.Name, err)
	}
	return nil
}

// validate checks the invariants Read relies on; the returned text becomes a
// CorruptError reason.
func (r *Record) validate() error {
	if r.JobID == 0 {
		return errors.New("job ID 0")
	}
	for i, s := range r.Steps {
		if s.Name == "" {
			return fmt.Errorf("step %d has no name", i)
		}
		if !s.State.Valid() {
			return fmt.Errorf("step %d (%s) has unknown state %q", i, s.Name, s.State)
		}
	}
	return nil
}
