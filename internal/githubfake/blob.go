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
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const maxAppendBlock = 4 << 20

type blob struct {
	typ      string // "AppendBlob", "BlockBlob", or "" while only blocks are staged
	data     []byte
	sealed   bool
	replaced int
	staged   map[string][]byte // Put Block, by block id, until Put Block List
}

func blobName(kind, jobID, stepID string) string {
	if stepID == "" {
		return kind + "/" + jobID
	}
	return kind + "/" + jobID + "/" + stepID
}

// blobSig signs a blob name and its SAS permissions (sp).
func (s *Server) blobSig(name, sp string) string {
	mac := hmac.New(sha256.New, s.signKey)
	mac.Write([]byte("blob:" + name + "\x00" + sp))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// signedBlobURL is a SAS-style URL; it already has a query so clients
// can append "&comp=...".
func (s *Server) signedBlobURL(name string) string { return s.signedBlobURLFor(name, "racw") }

// signedBlobURLFor is a SAS URL with permissions sp ("r" to read, "cw"
// to create and write).
func (s *Server) signedBlobURLFor(name, sp string) string {
	return s.URL() + "/blob/" + name + "?sv=2023-11-03&sr=b&sp=" + sp + "&sig=" + url.QueryEscape(s.blobSig(name, sp))
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
	if reason := s.checkSAS(r, name); reason != "" {
		s.azureFail(w, r, http.StatusForbidden, "AuthenticationFailed", reason)
		return
	}
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		s.getBlob(w, r, name)
	case r.Method != http.MethodPut:
		s.azureFail(w, r, http.StatusMethodNotAllowed, "UnsupportedHttpVerb", r.Method)
	case q.Get("comp") == "":
		s.putBlob(w, r, name)
	case q.Get("comp") == "block":
		s.putBlock(w, r, name)
	case q.Get("comp") == "blocklist":
		s.putBlockList(w, r, name)
	case q.Get("comp") == "appendblock":
		s.appendBlock(w, r, name)
	case q.Get("comp") == "seal":
		s.sealBlob(w, r, name)
	default:
		s.azureFail(w, r, http.StatusBadRequest, "InvalidQueryParameterValue", "comp="+q.Get("comp"))
	}
}

// checkSAS verifies the signature over name and sp, that sp allows the
// request (r to read, w to write), and that no Authorization header
// rides along: a client must never send a token to a SAS URL, which on
// GitHub is another party's host.
func (s *Server) checkSAS(r *http.Request, name string) string {
	q := r.URL.Query()
	sp := q.Get("sp")
	switch {
	case !hmac.Equal([]byte(q.Get("sig")), []byte(s.blobSig(name, sp))):
		return "missing or wrong SAS signature"
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && !strings.Contains(sp, "r"):
		return "the SAS does not allow reading (sp=" + sp + ")"
	case r.Method == http.MethodPut && !strings.Contains(sp, "w"):
		return "the SAS does not allow writing (sp=" + sp + ")"
	case r.Header.Get("Authorization") != "":
		return "an Authorization header was sent to a SAS URL"
	}
	return ""
}

// getBlob is Get Blob, with Range requests as Azure serves them.
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, name string) {
	s.mu.Lock()
	b := s.blobs[name]
	var data []byte
	if b != nil && b.typ != "" {
		data = append(data, b.data...)
		w.Header().Set("x-ms-blob-type", b.typ)
		if b.typ == "AppendBlob" {
			w.Header().Set("x-ms-blob-sealed", fmt.Sprint(b.sealed))
		}
	}
	s.mu.Unlock()
	if b == nil || b.typ == "" {
		s.azureFail(w, r, http.StatusNotFound, "BlobNotFound", name)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
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

// Block blob limits the fake enforces: Azure's rules for ids and counts;
// blocks are capped lower than Azure's 4000 MiB because the fake keeps
// them in memory.
const (
	maxBlockSize  = 256 << 20
	maxBlockCount = 50000
	maxBlockIDLen = 64
)

// putBlock is Put Block: stage one block under its base64 id.
func (s *Server) putBlock(w http.ResponseWriter, r *http.Request, name string) {
	id := r.URL.Query().Get("blockid")
	raw, err := base64.StdEncoding.DecodeString(id)
	if err != nil || len(raw) == 0 || len(raw) > maxBlockIDLen {
		s.azureFail(w, r, http.StatusBadRequest, "InvalidQueryParameterValue", fmt.Sprintf("blockid %q is not base64 of 1 to %d bytes", id, maxBlockIDLen))
		return
	}
	if r.ContentLength < 0 || r.ContentLength > maxBlockSize {
		s.azureFail(w, r, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "a block needs a Content-Length of at most 256 MiB")
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength+1))
	if err != nil || int64(len(data)) != r.ContentLength {
		s.azureFail(w, r, http.StatusBadRequest, "InvalidInput", "the body does not match Content-Length")
		return
	}
	if code, msg := s.stageBlock(name, id, data); code != "" {
		s.azureFail(w, r, http.StatusBadRequest, code, msg)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) stageBlock(name, id string, data []byte) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.blobs[name]
	if b == nil {
		b = &blob{}
		s.blobs[name] = b
	}
	if b.typ == "AppendBlob" {
		return "InvalidBlobType", "Put Block on an append blob"
	}
	if b.staged == nil {
		b.staged = map[string][]byte{}
	}
	for other := range b.staged {
		if len(other) != len(id) {
			return "InvalidBlobOrBlock", "block ids of one blob must have equal lengths"
		}
		break
	}
	if _, ok := b.staged[id]; !ok && len(b.staged) >= maxBlockCount {
		return "BlockCountExceedsLimit", "more than 50000 uncommitted blocks"
	}
	b.staged[id] = data
	return "", ""
}

// putBlockList is Put Block List: the blob becomes the listed staged
// blocks in order; unlisted blocks are dropped, as Azure does.
func (s *Server) putBlockList(w http.ResponseWriter, r *http.Request, name string) {
	var list struct {
		XMLName     xml.Name `xml:"BlockList"`
		Latest      []string `xml:"Latest"`
		Uncommitted []string `xml:"Uncommitted"`
		Committed   []string `xml:"Committed"`
	}
	if err := xml.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&list); err != nil {
		s.azureFail(w, r, http.StatusBadRequest, "InvalidXmlDocument", err.Error())
		return
	}
	if len(list.Committed) > 0 || len(list.Uncommitted) > 0 {
		s.azureFail(w, r, http.StatusBadRequest, "InvalidBlockList", "the fake takes Latest entries only")
		return
	}
	if code, msg := s.commitBlocks(name, list.Latest); code != "" {
		s.azureFail(w, r, http.StatusBadRequest, code, msg)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) commitBlocks(name string, ids []string) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.blobs[name]
	if len(ids) == 0 || len(ids) > maxBlockCount {
		return "InvalidBlockList", fmt.Sprintf("%d blocks", len(ids))
	}
	var data []byte
	for _, id := range ids {
		block, ok := []byte(nil), false
		if b != nil {
			block, ok = b.staged[id]
		}
		if !ok {
			return "InvalidBlockList", "block " + id + " was not staged"
		}
		data = append(data, block...)
	}
	nb := &blob{typ: "BlockBlob", data: data}
	if b != nil && b.typ != "" {
		nb.replaced = b.replaced + 1
	}
	s.blobs[name] = nb
	return "", ""
}
