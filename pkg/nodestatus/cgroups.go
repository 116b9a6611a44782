package nodestatus

import (
	"fmt"
	"slices"
)

// Cgroup is one job's proxy cgroups on the node (cgroup v1; under v2 the
// limits live on Slurm's step cgroups and Slurm removes them).
type Cgroup struct {
	JobID uint32            `json:"job_id"`
	Dirs  map[string]string `json:"dirs"`
	// Problem is set for cgroups no running job explains: left by a job
	// whose epilog did not finish; lwkctl cleanup --job removes them.
	Problem string `json:"problem,omitempty"`
}

// CgroupLister lists jobs' cgroups (proxycgroup.Manager).
type CgroupLister interface {
	Leftovers() ([]uint32, error)
	JobDirs(jobID uint32) map[string]string
}

// AddCgroups adds the jobs that have cgroups of ours; those of a job
// without a journal are a problem.
func (s *Status) AddCgroups(l CgroupLister) error {
	ids, err := l.Leftovers()
	if err != nil {
		return fmt.Errorf("list proxy cgroups: %w", err)
	}
	s.Cgroups = []Cgroup{}
	for _, id := range ids {
		c := Cgroup{JobID: id, Dirs: l.JobDirs(id)}
		if !slices.ContainsFunc(s.Jobs, func(j Job) bool { return j.JobID == id && j.Error == "" }) {
			c.Problem = fmt.Sprintf("no journal: left by a job whose epilog did not finish; lwkctl cleanup --job %d removes it", id)
		}
		s.Cgroups = append(s.Cgroups, c)
	}
	return nil
}
