/* SPDX-License-Identifier: GPL-2.0-only */
/* SHA-256 (FIPS 180-4), for the oracle's {"sha256": HEX, "len": N} form of long data. */
#ifndef COCOSIM_ORACLE_SHA256_H
#define COCOSIM_ORACLE_SHA256_H

#include <stddef.h>
#include <stdint.h>

void sha256(const uint8_t *data, size_t len, uint8_t out[32]);

#endif
