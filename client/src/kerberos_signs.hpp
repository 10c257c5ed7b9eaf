// Whether libpq's GSSAPI probe could find anything on this host.
//
// With gssencmode=prefer (libpq's default) every connect first asks the
// GSSAPI library for Kerberos credentials: loading its configuration and
// touching its libraries costs each standby about 0.3 MiB (PSS), the margin
// of its memory target. Where the host shows no sign of Kerberos the probe
// cannot succeed, so the elector's connections skip it (gssencmode=disable)
// unless the DSN, its service or PGGSSENCMODE chooses (connect_params.hpp). Any
// sign counts: MIT Kerberos' environment (KRB5_CONFIG, KRB5CCNAME,
// KRB5_CLIENT_KTNAME) or GSS-Proxy's (GSS_USE_PROXY, GSS_MECH_CONFIG); a
// configuration (/etc/krb5.conf, which is where any other credential cache,
// KEYRING or KCM, would be named); Debian's default credential cache
// /tmp/krb5cc_UID or client keytab /etc/krb5/user/UID/client.keytab (real or
// effective uid); a GSSAPI mechanism configured in /etc/gss/mech or
// /etc/gss/mech.d.
#pragma once

#include <functional>
#include <string>

namespace singleton_lock::kerberos {

struct Host {
    std::function<const char*(const char*)> env;        // getenv
    std::function<bool(const std::string&)> exists;     // a file or directory
    std::function<bool(const std::string&)> has_files;  // a directory with entries
    unsigned uid = 0, euid = 0;
};

bool possible(const Host& host);
// This process's view.
Host this_host();

}  // namespace singleton_lock::kerberos
