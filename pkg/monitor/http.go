package monitor

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Handler serves the monitor's cache over HTTP (read-only, never an IHK
// call):
//
//	GET /v1/jobs/<id>/record[?wait=20s]  the node's record of a job: 200
//	    final, 202 partial (still running after wait), 404 unknown
//	GET /v1/status                       instances, readiness, spool size
//	GET /v1/readiness                    per job NUMA node free memory
func (m *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs/{id}/record", m.serveRecord)
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, m.Snapshot())
	})
	mux.HandleFunc("GET /v1/readiness", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, m.Snapshot().Readiness)
	})
	return mux
}

func (m *Monitor) serveRecord(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 32)
	if err != nil || id == 0 {
		http.Error(w, "bad job id", http.StatusBadRequest)
		return
	}
	var wait time.Duration
	if s := r.URL.Query().Get("wait"); s != "" {
		if wait, err = time.ParseDuration(s); err != nil || wait < 0 {
			http.Error(w, "bad wait", http.StatusBadRequest)
			return
		}
	}
	rec, ok := m.Record(r.Context(), uint32(id), wait)
	if !ok {
		http.Error(w, "no such job on this node", http.StatusNotFound)
		return
	}
	code := http.StatusOK
	if strings.EqualFold(rec.Final, "running") {
		code = http.StatusAccepted
	}
	writeJSON(w, code, rec)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
