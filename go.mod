module github.com/slurm-lwk/slurm-lwk

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/spf13/pflag v1.1.0
	github.com/stretchr/testify v1.12.1
	golang.org/x/sys v0.50.0
	k8s.io/utils v0.0.0-20261023123148-ca04ba58ecab
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect
