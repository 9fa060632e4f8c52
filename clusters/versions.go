package clusters

import _ "embed"

// VersionsYAML is clusters/versions.yaml: the component versions the kind
// provider installs. clusters/kind parses it (kind.LoadVersions); it lives
// here because Go embeds only files at or below the embedding package.
//
//go:embed versions.yaml
var VersionsYAML []byte
