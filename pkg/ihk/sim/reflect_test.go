package sim

import (
	"reflect"

	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
)

func reflectClient() reflect.Type { return reflect.TypeFor[ihk.Client]() }
