package ihk

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestErrorMatchesSentinels(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		is   []error
		not  []error
	}{
		{"busy", &Error{Op: "IHK_DEVICE_DESTROY_OS", OS: 0, Errno: syscall.EBUSY}, []error{ErrBusy, syscall.EBUSY}, []error{ErrInvalid, ErrNotFound}},
		{"enoent", &Error{Op: "open /dev/mcos3", OS: 3, Errno: syscall.ENOENT}, []error{ErrNotFound}, []error{ErrInvalid}},
		{"destroy of a missing index", &Error{Op: "IHK_DEVICE_DESTROY_OS", OS: 9, Errno: syscall.EINVAL, NotFound: true}, []error{ErrNotFound}, []error{ErrInvalid}},
		{"einval", &Error{Op: "IHK_OS_SET_KARGS", OS: 0, Errno: syscall.EINVAL}, []error{ErrInvalid}, []error{ErrNotFound}},
		{"e2big", &Error{Op: "IHK_OS_LOAD", OS: 0, Errno: syscall.E2BIG}, []error{ErrInvalid}, nil},
		{"timeouts", &Error{Op: "IHK_OS_AUX_PERF_SET", OS: 0, Errno: syscall.ETIME}, []error{ErrTimeout}, nil},
		{"enomem", &Error{Op: "IHK_DEVICE_RESERVE_MEM", OS: -1, Errno: syscall.ENOMEM}, []error{ErrNoMemory}, nil},
		{"eperm", &Error{Op: "IHK_OS_BOOT", OS: 0, Errno: syscall.EPERM}, []error{ErrPermission}, []error{ErrBusy}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wrapped := fmt.Errorf("boot: %w", tc.err)
			for _, target := range tc.is {
				require.True(t, errors.Is(wrapped, target), "%v is %v", tc.err, target)
			}
			for _, target := range tc.not {
				require.False(t, errors.Is(wrapped, target), "%v is not %v", tc.err, target)
			}
		})
	}
	e := &Error{Op: "IHK_DEVICE_RESERVE_CPU", OS: -1, Errno: syscall.EINVAL, Detail: "cpus 2-15"}
	require.Equal(t, "ihk IHK_DEVICE_RESERVE_CPU (cpus 2-15): invalid argument", e.Error())
}

func TestSubtractChunks(t *testing.T) {
	a := []MemChunk{{2, 8}, {2, 8}, {3, 4}, {3, 16}}
	require.Equal(t, []MemChunk{{2, 8}, {3, 16}}, SubtractChunks(a, []MemChunk{{2, 8}, {3, 4}, {5, 1}}),
		"each chunk of b cancels one equal chunk of a")
	require.Equal(t, a, SubtractChunks(a, nil))
	require.Empty(t, SubtractChunks(nil, a))
}

func TestStatusText(t *testing.T) {
	for s := StatusNotBooted; s <= StatusHungup; s++ {
		b, err := s.MarshalText()
		require.NoError(t, err)
		var back Status
		require.NoError(t, back.UnmarshalText(b))
		require.Equal(t, s, back)
	}
	require.Equal(t, "UNKNOWN(42)", Status(42).String())
	var s Status
	require.Error(t, s.UnmarshalText([]byte("BOGUS")))
}
