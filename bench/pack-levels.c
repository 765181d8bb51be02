/* bench/pack-levels: pack DIR with each deflate level given, REPEAT times, writing to
 * OUT, and print "level seconds bytes" for the best run of each. Built and run by
 * bench/pack; the level is not a user setting (it is part of the bundle format). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pilot/bundle.h"

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: pack-levels DIR OUT REPEAT LEVEL...\n");
		return 2;
	}
	int repeat = (int)strtol(argv[3], NULL, 10);
	for (int i = 4; i < argc; i++) {
		int level = (int)strtol(argv[i], NULL, 10);
		int64_t best = -1;
		uint64_t size = 0;
		for (int k = 0; k < repeat; k++) {
			int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0)
				return 1;
			struct pilot_pack_opts o = { .dir = argv[1], .level = level, .max_size = UINT64_MAX };
			struct pilot_bundle_info info;
			int64_t t0 = pilot_mono_ms();
			if (pilot_bundle_pack(&o, fd, &info) < 0) {
				fprintf(stderr, "pack: %s\n", pilot_error_last());
				return 1;
			}
			close(fd);
			int64_t dt = pilot_mono_ms() - t0;
			if (best < 0 || dt < best)
				best = dt;
			size = info.compressed_size;
		}
		printf("%d %.2f %llu\n", level, (double)best / 1000, (unsigned long long)size);
		fflush(stdout);
	}
	return 0;
}
