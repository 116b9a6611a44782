// build/ holds generated trees (debootstrap roots with /proc mounted while a
// matrix run is active, VM images, packages). This empty module keeps them
// out of the main module, so `go vet ./...` and `go test ./...` do not walk
// into them.
module slurm-lwk-build
