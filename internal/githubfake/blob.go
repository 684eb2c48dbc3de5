package githubfake

// Azure Blob Storage emulation for the signed URLs handed out by the
// results service. Checked against actions/runner
// src/Sdk/WebApi/WebApi/ResultsHttpClient.cs (raw HTTP path):
//   create:  PUT url            x-ms-blob-type: AppendBlob, empty body
//   append:  PUT url&comp=appendblock        (body = block)
//   last:    PUT url&comp=appendblock&seal=true, header x-ms-blob-sealed: True
//   single:  PUT url            x-ms-blob-type: BlockBlob (first block is final)
// plus the Azure SDK path (useSdk): PUT url&comp=seal, and If-None-Match: *
// on create. Azure rules enforced: append only to an existing append blob,
// no append after seal (409 BlobIsSealed), Put Blob replaces an existing
// blob unless If-None-Match: * (409 BlobAlreadyExists), append blocks at
// most 4 MiB, append-blob creation with an empty body.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

const maxAppendBlock = 4 << 20

type blob struct {
	typ      string // "AppendBlob" or "BlockBlob"
	data     []byte
	sealed   bool
	replaced int
}

func blobName(kind, jobID, stepID string) string {
	if stepID == "" {
		return kind + "/" + jobID
	}
	return kind + "/" + jobID + "/" + stepID
}

func (s *Server) blobSig(name string) string {
	mac := hmac.New(sha256.New, s.signKey)
	mac.Write([]byte("blob:" + name))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// signedBlobURL is a SAS-style URL; it already has a query so clients
// can append "&comp=...".
func (s *Server) signedBlobURL(name string) string {
	return s.URL() + "/blob/" + name + "?sv=2023-11-03&sr=b&sp=racw&sig=" + url.QueryEscape(s.blobSig(name))
}

func (s *Server) azureFail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	s.record(r, status, "blob: "+code+": "+msg)
	w.Header().Set("x-ms-error-code", code)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}

func (s *Server) handleBlob(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/blob/")
	q := r.URL.Query()
	if !hmac.Equal([]byte(q.Get("sig")), []byte(s.blobSig(name))) {
		s.azureFail(w, r, http.StatusForbidden, "AuthenticationFailed", "missing or wrong SAS signature")
		return
	}
	switch {
	case r.Method == http.MethodGet:
		s.getBlob(w, r, name)
	case r.Method != http.MethodPut:
		s.azureFail(w, r, http.StatusMethodNotAllowed, "UnsupportedHttpVerb", r.Method)
	case q.Get("comp") == "":
		s.putBlob(w, r, name)
	case q.Get("comp") == "appendblock":
		s.appendBlock(w, r, name)
	case q.Get("comp") == "seal":
		s.sealBlob(w, r, name)
	default:
		s.azureFail(w, r, http.StatusBadRequest, "InvalidQueryParameterValue", "comp="+q.Get("comp"))
	}
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, name string) {
	s.mu.Lock()
	b := s.blobs[name]
	var data []byte
	if b != nil {
		data = append(data, b.data...)
		w.Header().Set("x-ms-blob-type", b.typ)
		w.Header().Set("x-ms-blob-sealed", fmt.Sprint(b.sealed))
	}
	s.mu.Unlock()
	if b == nil {
		s.azureFail(w, r, http.StatusNotFound, "BlobNotFound", name)
		return
	}
	_, _ = w.Write(data)
}

// putBlob is Put Blob: creates or replaces the whole blob.
func (s *Server) putBlob(w http.ResponseWriter, r *http.Request, name string) {
	typ := r.Header.Get("x-ms-blob-type")
	if typ != "AppendBlob" && typ != "BlockBlob" {
		s.azureFail(w, r, http.StatusBadRequest, "MissingRequiredHeader", fmt.Sprintf("x-ms-blob-type %q, want AppendBlob or BlockBlob", typ))
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		s.azureFail(w, r, http.StatusBadRequest, "InvalidInput", err.Error())
		return
	}
	if typ == "AppendBlob" && len(data) > 0 {
		s.azureFail(w, r, http.StatusBadRequest, "InvalidHeaderValue", "creating an append blob needs Content-Length: 0")
		return
	}
	s.mu.Lock()
	old := s.blobs[name]
	if old != nil && r.Header.Get("If-None-Match") == "*" {
		s.mu.Unlock()
		s.azureFail(w, r, http.StatusConflict, "BlobAlreadyExists", name)
		return
	}
	nb := &blob{typ: typ, data: data}
	if old != nil {
		nb.replaced = old.replaced + 1
	}
	s.blobs[name] = nb
	s.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) appendBlock(w http.ResponseWriter, r *http.Request, name string) {
	seal, reason := sealRequested(r)
	if reason != "" {
		s.azureFail(w, r, http.StatusBadRequest, "InvalidHeaderValue", reason)
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxAppendBlock+1))
	if err != nil {
		s.azureFail(w, r, http.StatusBadRequest, "InvalidInput", err.Error())
		return
	}
	if len(data) > maxAppendBlock {
		s.azureFail(w, r, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "append block over 4 MiB")
		return
	}
	if status, code, msg := s.appendData(name, data, seal); status != 0 {
		s.azureFail(w, r, status, code, msg)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) appendData(name string, data []byte, seal bool) (int, string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.blobs[name]
	switch {
	case b == nil:
		return http.StatusNotFound, "BlobNotFound", "append before the append blob was created"
	case b.typ != "AppendBlob":
		return http.StatusConflict, "InvalidBlobType", "append to a " + b.typ
	case b.sealed:
		return http.StatusConflict, "BlobIsSealed", "append after seal"
	}
	b.data = append(b.data, data...)
	b.sealed = seal
	return 0, "", ""
}

// sealRequested reads the runner's seal markers: query seal=true and/or
// header x-ms-blob-sealed (True/False, as .NET bool.ToString writes it).
func sealRequested(r *http.Request) (bool, string) {
	seal := false
	if v := r.URL.Query().Get("seal"); v != "" {
		if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
			return false, "seal=" + v
		}
		seal = strings.EqualFold(v, "true")
	}
	if v, ok := r.Header["X-Ms-Blob-Sealed"]; ok {
		if !strings.EqualFold(v[0], "true") && !strings.EqualFold(v[0], "false") {
			return false, "x-ms-blob-sealed: " + v[0]
		}
		seal = seal || strings.EqualFold(v[0], "true")
	}
	return seal, ""
}

func (s *Server) sealBlob(w http.ResponseWriter, r *http.Request, name string) {
	s.mu.Lock()
	b := s.blobs[name]
	if b != nil && b.typ == "AppendBlob" {
		b.sealed = true
	}
	s.mu.Unlock()
	switch {
	case b == nil:
		s.azureFail(w, r, http.StatusNotFound, "BlobNotFound", name)
	case b.typ != "AppendBlob":
		s.azureFail(w, r, http.StatusConflict, "InvalidBlobType", "seal of a "+b.typ)
	default:
		w.WriteHeader(http.StatusOK)
	}
}
