"""Certificates for TLS tests, made at test time with the `openssl` command
line: a CA, and server or client certificates it signs.  Nothing secret is
committed; everything lives in a directory the caller owns (a tmp_path).

    ca = make_ca(d)                                   # d/ca.crt, d/ca.key
    node = make_cert(d, 'node', ca)                   # SANs IP:127.0.0.1, DNS:localhost
    proxy = make_cert(d, 'client', ca, sans=[])       # a client certificate
    rogue = make_cert(d, 'rogue', make_ca(d, 'other-ca'))

Keys are EC P-256: quick to make and quick to handshake on a busy machine.
Every certificate may serve both ends (serverAuth and clientAuth), as Redis
uses its node certificate for the cluster bus and replication too.
"""
import os
import subprocess

DAYS = '3'
KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']


class Cert:
    """Paths of one certificate and its key (and, for a leaf, its CA's certificate)."""

    def __init__(self, cert, key, ca=None):
        self.cert, self.key, self.ca = cert, key, ca

    def __repr__(self):
        return 'Cert(%r)' % self.cert


def _openssl(*args, cwd):
    out = subprocess.run(['openssl'] + list(args), cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if out.returncode != 0:
        raise RuntimeError('openssl %s failed:\n%s' % (' '.join(args), out.stdout.decode(errors='replace')))


def make_ca(directory, name='ca'):
    """A self-signed CA: <name>.crt and <name>.key in `directory`."""
    os.makedirs(directory, exist_ok=True)
    crt, key = os.path.join(directory, name + '.crt'), os.path.join(directory, name + '.key')
    _openssl('req', '-x509', *KEY, '-keyout', key, '-out', crt, '-days', DAYS,
             '-subj', '/CN=geproxy test %s' % name,
             '-addext', 'basicConstraints=critical,CA:TRUE',
             '-addext', 'keyUsage=critical,keyCertSign,cRLSign', cwd=directory)
    return Cert(crt, key, crt)


def make_cert(directory, name, ca, sans=('IP:127.0.0.1', 'DNS:localhost')):
    """A certificate named `name` (also its CN), signed by `ca` (a make_ca result),
    with these subjectAltNames: <name>.crt and <name>.key in `directory`."""
    os.makedirs(directory, exist_ok=True)
    crt, key, csr, ext = (os.path.join(directory, name + suffix) for suffix in ('.crt', '.key', '.csr', '.ext'))
    _openssl('req', '-new', *KEY, '-keyout', key, '-out', csr, '-subj', '/CN=%s' % name, cwd=directory)
    with open(ext, 'w') as f:
        f.write('basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
                'extendedKeyUsage=serverAuth,clientAuth\nsubjectKeyIdentifier=hash\n'
                'authorityKeyIdentifier=keyid\n')
        if sans:
            f.write('subjectAltName=%s\n' % ','.join(sans))
    _openssl('x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial',
             '-out', crt, '-days', DAYS, '-extfile', ext, cwd=directory)
    os.remove(csr)
    os.remove(ext)
    return Cert(crt, key, ca.cert)
