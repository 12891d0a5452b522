package main

import (
	"crypto/tls"

	"google.golang.org/grpc"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/services/archive/archiveclient"
	"github.com/pecarchive/pecarchive/services/query"
)

// clientCredentials reads how a command authenticates to one of the services, from the settings
// named by prefix (PECARCHIVE_ARCHIVE, PECARCHIVE_QUERY): a bearer token from PREFIX_TOKEN_FILE
// (or PREFIX_TOKEN), and TLS with the server's CA from PREFIX_CA_FILE and a client certificate
// from PREFIX_CERT_FILE and PREFIX_KEY_FILE. tlsCfg is nil when none of the three is set.
func (s settings) clientCredentials(prefix string) (token string, tlsCfg *tls.Config, err error) {
	if token, err = s.secret(prefix + "_TOKEN"); err != nil {
		return "", nil, err
	}
	ct := auth.ClientTLS{CAFile: s.get(prefix+"_CA_FILE", ""), CertFile: s.get(prefix+"_CERT_FILE", ""),
		KeyFile: s.get(prefix+"_KEY_FILE", "")}
	if ct != (auth.ClientTLS{}) {
		if tlsCfg, err = ct.Config(); err != nil {
			return "", nil, err
		}
	}
	return token, tlsCfg, nil
}

// dialArchive connects to the archive service at addr with the PECARCHIVE_ARCHIVE_* credentials.
func (s settings) dialArchive(addr string) (*grpc.ClientConn, archivev1.ArchiveServiceClient, error) {
	token, tlsCfg, err := s.clientCredentials("PECARCHIVE_ARCHIVE")
	if err != nil {
		return nil, nil, err
	}
	return archiveclient.Dial(addr, archiveclient.DialOptions{Token: token, TLS: tlsCfg})
}

// dialQuery connects to the query service at addr with the PECARCHIVE_QUERY_* credentials.
func (s settings) dialQuery(addr string) (*grpc.ClientConn, querypb.EvidenceServiceClient, error) {
	token, tlsCfg, err := s.clientCredentials("PECARCHIVE_QUERY")
	if err != nil {
		return nil, nil, err
	}
	return query.Dial(addr, query.DialOptions{Token: token, TLS: tlsCfg})
}
