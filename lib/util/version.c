/* Versions: pilot's, and each linked library's as it reports itself at run time. */
#include <string.h>

#include <archive.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <yaml.h>
#include <zlib.h>

#include "pilot-build.h"
#include "pilot/version.h"

const char *pilot_version(void)
{
	return PILOT_VERSION_STRING;
}

void pilot_library_versions(struct pilot_buf *out)
{
	pilot_buf_printf(out, "sqlite %s\n", sqlite3_libversion());
	pilot_buf_printf(out, "libyaml %s\n", yaml_get_version_string());
	pilot_buf_printf(out, "libcurl %s\n", curl_version_info(CURLVERSION_NOW)->version);
	pilot_buf_printf(out, "libarchive %s\n", archive_version_string() + strlen("libarchive "));
	pilot_buf_printf(out, "zlib %s\n", zlibVersion());
	pilot_buf_printf(out, "libmicrohttpd %s\n", MHD_get_version());
	pilot_buf_printf(out, "jansson %s\n", jansson_version_str());
	pilot_buf_printf(out, "openssl %s\n", OpenSSL_version(OPENSSL_VERSION));
}
