package http

import (
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/workflow"
)

func (s *Server) routeWorkflows(r chi.Router) {
	r.Put("/workflows/{name}", s.putWorkflow)
	r.Get("/workflows", s.listWorkflows)
	r.Get("/workflows/{name}", s.getWorkflow)
}

// putWorkflow takes a definition in JSON or YAML (by Content-Type); the name
// comes from the path and, if the body has one too, they must agree.
func (s *Server) putWorkflow(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	name := chi.URLParam(r, "name")
	if err := oms.ValidateWorkflowName("name", name); err != nil {
		s.fail(w, r, err)
		return
	}
	def, err := workflow.Decode(body, r.Header.Get("Content-Type"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	switch def.Name {
	case "":
		def.Name = name
	case name:
	default:
		s.fail(w, r, oms.Invalid("name", "%q differs from the name in the path (%q): leave it out or make them equal", def.Name, name))
		return
	}
	stored, created, err := storeOf(r).PutWorkflow(r.Context(), def)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writePut(w, created, stored)
}

func (s *Server) listWorkflows(w http.ResponseWriter, r *http.Request) {
	ws, err := storeOf(r).Workflows(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ws == nil {
		ws = []*oms.Workflow{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"workflows": ws})
}

func (s *Server) getWorkflow(w http.ResponseWriter, r *http.Request) {
	version, err := intParam(r, "version", 1, maxVersionParam)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wf, err := storeOf(r).Workflow(r.Context(), chi.URLParam(r, "name"), int(version))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wf)
}
