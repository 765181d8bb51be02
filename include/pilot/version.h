/* version: pilot's own version and those of the libraries it is linked with. */
#ifndef PILOT_VERSION_H
#define PILOT_VERSION_H

#include "pilot/util.h"

const char *pilot_version(void);
/* One "name version" line per linked library, as reported at run time. */
void pilot_library_versions(struct pilot_buf *out);

#endif
