package http

import (
	"mime"
	"net/http"

	"github.com/go-chi/chi/v5"

	oms "github.com/omscloud/omscloud/runtime"
)

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		// Cell is the database server of the account's database; "" is the runtime's default cell.
		Cell string `json:"cell"`
	}
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	a := &oms.Account{ID: req.ID, Name: req.Name, Cell: req.Cell}
	key, err := s.opts.Accounts.CreateAccount(r.Context(), a)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": a.ID, "apiKey": key})
}

func (s *Server) issueKey(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if err := oms.ValidateAccountID(id); err != nil {
		s.fail(w, r, err)
		return
	}
	key, err := s.opts.Accounts.IssueKey(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id, "apiKey": key})
}

func (s *Server) putLocation(w http.ResponseWriter, r *http.Request) {
	// The ref comes from the path, so the body may not carry one: decode into
	// a view of the location without it.
	var l oms.Location
	if err := s.decode(w, r, &struct {
		Name *string   `json:"name"`
		Type *string   `json:"type"`
		Lat  **float64 `json:"lat"`
		Lon  **float64 `json:"lon"`
	}{&l.Name, &l.Type, &l.Lat, &l.Lon}); err != nil {
		s.fail(w, r, err)
		return
	}
	l.Ref = chi.URLParam(r, "ref")
	created, err := storeOf(r).PutLocation(r.Context(), &l)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writePut(w, created, l)
}

func (s *Server) loadInventory(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var lr oms.LineReader
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxBatchBytes)
	switch {
	case err != nil:
		s.fail(w, r, oms.Errorf(oms.EUNSUPPORTED, "Content-Type", "required: text/csv or application/x-ndjson"))
		return
	case mt == "text/csv":
		lr = oms.NewCSVReader(body)
	case mt == "application/x-ndjson" || mt == "application/ndjson":
		lr = oms.NewNDJSONReader(body)
	default:
		s.fail(w, r, oms.Errorf(oms.EUNSUPPORTED, "Content-Type", "%q not supported: use text/csv or application/x-ndjson", mt))
		return
	}
	res, err := storeOf(r).LoadInventory(r.Context(), lr)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) stock(w http.ResponseWriter, r *http.Request) {
	lv, err := storeOf(r).Stock(r.Context(), chi.URLParam(r, "location"), chi.URLParam(r, "sku"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, lv)
}

func (s *Server) availability(w http.ResponseWriter, r *http.Request) {
	var req oms.AvailabilityRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := storeOf(r).AvailabilityJSON(r.Context(), &req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
