package gke

import (
	"fmt"
	"regexp"
	"strings"
)

// Repository is the Artifact Registry Docker repository an image is pulled from.
type Repository struct {
	// Location is the repository's region or multi-region ("us-central1", "europe").
	Location string
	Project  string
	// Name is the repository id.
	Name string
}

func (r Repository) String() string {
	return r.Location + "-docker.pkg.dev/" + r.Project + "/" + r.Name
}

var (
	registryHost       = regexp.MustCompile(`^([a-z]+(?:-[a-z]+[0-9]+)?)-docker\.pkg\.dev$`)
	registryProject    = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	registryRepository = regexp.MustCompile(`^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
)

// ImageRepository returns the repository of an Artifact Registry image,
// "<location>-docker.pkg.dev/<project>/<repository>/<image>[:tag][@sha256:<digest>]". Only such a repository can grant
// the nodes' service account read access; an image anywhere else (Docker Hub, ghcr.io, gcr.io) is an error saying so.
func ImageRepository(image string) (Repository, error) {
	host, path, _ := strings.Cut(image, "/")
	// As Docker reads a reference: a first part without '.' or ':' is a path on Docker Hub ("oms:1.4", "library/oms").
	if path == "" || !strings.ContainsAny(host, ".:") {
		host, path = "docker.io", image
	}
	m := registryHost.FindStringSubmatch(host)
	if m == nil {
		return Repository{}, fmt.Errorf("%q is pulled from %s, where the nodes cannot be granted read access: push the image to an Artifact Registry repository and name it as <location>-docker.pkg.dev/<project>/<repository>/<image>", image, host)
	}
	parts := strings.Split(path, "/")
	if len(parts) < 3 || parts[2] == "" {
		return Repository{}, fmt.Errorf("%q names no image inside a repository: use %s/<project>/<repository>/<image>", image, host)
	}
	if !registryProject.MatchString(parts[0]) {
		return Repository{}, fmt.Errorf("%q: %q is not a GCP project id (the path is %s/<project>/<repository>/<image>)", image, parts[0], host)
	}
	if !registryRepository.MatchString(parts[1]) {
		return Repository{}, fmt.Errorf("%q: %q is not an Artifact Registry repository id (lowercase letters, digits and hyphens)", image, parts[1])
	}
	return Repository{Location: m[1], Project: parts[0], Name: parts[1]}, nil
}
