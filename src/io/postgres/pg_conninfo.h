// libpq connection strings (postgresql:// URLs and key=value strings)
// checked before libpq sees them, and their secrets kept out of messages.
//
// libpq reads a URL's user info up to the FIRST '@' before the first '/',
// so a raw '@' or '/' in a password makes it connect somewhere else and
// print the rest of the password as a host name; it also quotes whatever
// it cannot parse. CheckPgConnInfo refuses such strings with a message that
// never contains them; PgConnInfoSecrets lists the spellings of their
// passwords for scrubbing whatever libpq says later.
//
// Thread-safety: pure functions; safe from any thread.
#pragma once

#include <string>
#include <vector>

#include "sluice/status.h"

namespace sluice {

/// OK when libpq reads `conninfo` as it was meant: in a URL the user info
/// ends at the '@' before the host (no raw '@' or '/' in the user name or
/// password, which must be written %40 and %2F) and every '%' starts a %XX
/// escape; and libpq parses it (PQconninfoParse, which does not connect).
/// Otherwise InvalidArgument saying what to change, without the string or
/// any part of it that could hold a password. Callers add the config key.
Status CheckPgConnInfo(const std::string& conninfo);

/// The passwords of `conninfo` (password, sslpassword) as written and as
/// libpq reads them (percent-decoded, unquoted), longest first; spellings
/// shorter than 4 characters are left out, as hiding them would turn
/// ordinary words of messages into ***.
std::vector<std::string> PgConnInfoSecrets(const std::string& conninfo);

/// Adds `secret` to `secrets` unless it is too short or already there,
/// keeping them longest first.
void AddPgSecret(std::vector<std::string>* secrets, std::string secret);

/// `text` with every secret replaced by ***.
std::string HideSecrets(std::string text, const std::vector<std::string>& secrets);

/// `text` (a message from libpq or the server) with every secret replaced
/// by *** and URLs' and password settings' passwords hidden (RedactUrl).
std::string ScrubPgMessage(std::string text, const std::vector<std::string>& secrets);

}  // namespace sluice
