/* Demultiplexing an engine's non-TTY output stream: frames with an 8-byte header
 * {stream, 0, 0, 0, big-endian length} that a read may cut anywhere, header included. */
#include <string.h>

#include "runtime-internal.h"

int runtime_demux_feed(struct runtime_demux *d, const char *data, size_t len, runtime_demux_fn fn, void *ud)
{
	while (len) {
		if (d->left == 0) {
			size_t take = sizeof(d->hdr) - d->hlen;
			if (take > len)
				take = len;
			memcpy(d->hdr + d->hlen, data, take);
			d->hlen += take;
			data += take;
			len -= take;
			if (d->hlen < sizeof(d->hdr))
				return 0;
			d->hlen = 0;
			if (d->hdr[0] > 3 || d->hdr[1] || d->hdr[2] || d->hdr[3])
				return pilot_error_set(PILOT_EINVALID,
						       "invalid output stream from the engine: bad frame header");
			/* 0 would be stdin echoed back, 3 the engine's own error text. */
			d->stream = d->hdr[0] == 1 ? 1 : 2;
			d->left = (uint32_t)d->hdr[4] << 24 | (uint32_t)d->hdr[5] << 16 | (uint32_t)d->hdr[6] << 8 |
				  (uint32_t)d->hdr[7];
			continue;
		}
		size_t take = d->left < len ? d->left : len;
		fn(d->stream, data, take, ud);
		d->left -= (uint32_t)take;
		data += take;
		len -= take;
	}
	return 0;
}

bool runtime_demux_clean(const struct runtime_demux *d)
{
	return d->hlen == 0 && d->left == 0;
}
