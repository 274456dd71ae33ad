package http

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	oms "github.com/omscloud/omscloud/runtime"
)

func (s *Server) routeFulfilments(r chi.Router) {
	r.Get("/fulfilments", s.listFulfilments)
	r.Get("/fulfilments/{id}", s.getFulfilment)
}

func (s *Server) listFulfilments(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 1, maxLimitParam)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	page, err := storeOf(r).Fulfilments(r.Context(), oms.FulfilmentFilter{Location: q.Get("location"), Status: q.Get("status"),
		Cursor: q.Get("cursor"), Limit: int(limit)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) getFulfilment(w http.ResponseWriter, r *http.Request) {
	f, err := storeOf(r).Fulfilment(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}
