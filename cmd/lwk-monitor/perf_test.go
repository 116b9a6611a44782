package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

// TestPerfAttrsFromProfiles: each profile's PerfEvents become the counters
// the monitor programs for its jobs, the modes as IHK's exclude bits.
func TestPerfAttrsFromProfiles(t *testing.T) {
	cfg, err := config.Parse(strings.NewReader(`IHKBackend=sim
OSCores=0-1
Profile=plain Image=/k.img Kargs=hidos
Profile=counted Image=/k.img Kargs=hidos PerfEvents=0x3c,0xc0:uk,0x2e:k
`), "lwk.conf")
	require.NoError(t, err)
	require.Equal(t, map[string][]ihk.PerfAttr{
		"counted": {
			{Config: 0x3c, ExcludeKernel: true},
			{Config: 0xc0},
			{Config: 0x2e, ExcludeUser: true},
		},
	}, perfAttrs(cfg))
}
