package master

import (
	"embed"
	"mime"
	"net/http"
	"path"

	"github.com/tockd/tock/httpapi"
)

// web is the status page served at / (plain HTML, CSS and JS; nothing is
// fetched from elsewhere).
//
//go:embed web/index.html web/app.js web/style.css
var web embed.FS

// servePage is GET /: the live status page.
func (m *Master) servePage(w http.ResponseWriter, _ *http.Request) error {
	return writeAsset(w, "index.html")
}

// servePageFile is GET /ui/{file}: the page's script and style.
func (m *Master) servePageFile(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("file")
	if name == "index.html" {
		return httpapi.Errorf(http.StatusNotFound, "no such file %s", name)
	}
	return writeAsset(w, name)
}

func writeAsset(w http.ResponseWriter, name string) error {
	b, err := web.ReadFile("web/" + name)
	if err != nil {
		return httpapi.Errorf(http.StatusNotFound, "no such file %s", name)
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Security-Policy", "default-src 'self'")
	httpapi.WriteBody(w, http.StatusOK, ct, b)
	return nil
}
