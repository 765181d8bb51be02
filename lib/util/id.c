/* Ids, randomness, hashing and clocks. Ids sort by creation time because the time
 * comes first, in a base32 alphabet whose ASCII order is its numeric order. */
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "pilot/util.h"

static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";
#define ID_EPOCH_MS 1735689600000LL /* 2025-01-01T00:00:00Z */

void pilot_random_bytes(void *out, size_t n)
{
	if (RAND_bytes(out, (int)n) != 1)
		abort();
}

void pilot_random_hex(char *out, size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char buf[64];
	size_t o = 0;
	while (nbytes) {
		size_t n = nbytes < sizeof(buf) ? nbytes : sizeof(buf);
		pilot_random_bytes(buf, n);
		for (size_t i = 0; i < n; i++) {
			out[o++] = hex[buf[i] >> 4];
			out[o++] = hex[buf[i] & 15];
		}
		nbytes -= n;
	}
	out[o] = '\0';
}

void pilot_id_new(char prefix, char out[PILOT_ID_SIZE])
{
	int64_t t = pilot_now_ms() - ID_EPOCH_MS;
	if (t < 0)
		t = 0;
	uint64_t ts = (uint64_t)t;
	out[0] = prefix;
	for (int i = 9; i >= 1; i--) {
		out[i] = b32[ts & 31];
		ts >>= 5;
	}
	unsigned char r[5];
	pilot_random_bytes(r, sizeof(r));
	for (int i = 0; i < 5; i++)
		out[10 + i] = b32[r[i] & 31];
	out[PILOT_ID_LEN] = '\0';
}

bool pilot_id_valid(const char *s, bool allow_prefix)
{
	size_t n = strlen(s);
	if (n == 0 || n > PILOT_ID_LEN || (!allow_prefix && n != PILOT_ID_LEN))
		return false;
	if (s[0] < 'a' || s[0] > 'z')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!strchr(b32, s[i]) || !s[i])
			return false;
	return true;
}

void pilot_sha256_hex(const void *p, size_t n, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LENGTH];
	unsigned int mdlen = 0;
	EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

bool pilot_sha256_valid(const char *hex)
{
	if (strlen(hex) != 64)
		return false;
	for (size_t i = 0; i < 64; i++)
		if (!strchr("0123456789abcdef", hex[i]) || !hex[i])
			return false;
	return true;
}

int64_t pilot_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pilot_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pilot_format_time(int64_t ms, char out[32])
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}
