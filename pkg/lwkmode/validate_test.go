package lwkmode

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
)

func TestValidate(t *testing.T) {
	conf := `IHKBackend=sim
OSCores=0-1
Profile=mck Image=/opt/mckernel/mckernel.img Kargs="hidos dump_level=24" AllowKargs=allow_oversubscribe,time_sharing,idle_halt,dump_level=
Profile=plain Image=/opt/mckernel/mckernel.img Kargs=hidos
`
	c, err := config.Parse(strings.NewReader(conf), "lwk.conf")
	require.NoError(t, err)
	tests := []struct {
		name    string
		spec    string
		wantErr string
	}{
		{name: "off", spec: "off"},
		{name: "default profile without kargs", spec: ""},
		{name: "allowed flags", spec: "mck:kargs=idle_halt+time_sharing"},
		{name: "allowed key with any value", spec: "mck:mem=8G,kargs=dump_level=0"},
		{name: "not on the list", spec: "mck:kargs=panic=1", wantErr: `lwk-mode "mck:kargs=panic=1": kernel argument "panic=1": not allowed by profile "mck"`},
		{name: "profile without allow list", spec: "plain:kargs=idle_halt", wantErr: `profile "plain" allows no extra kernel arguments`},
		{name: "too long together", spec: "mck:kargs=dump_level=" + strings.Repeat("1", 230), wantErr: "at most 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Parse(tt.spec)
			require.NoError(t, err)
			profile, err := c.Profile(req.Profile)
			require.NoError(t, err)
			err = Validate(req, profile)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
