// SPDX-License-Identifier: GPL-2.0
/*
 * mock-accel: the register file of a software device.
 *
 * It behaves like BAR0 of the PCI device: read-only identity registers,
 * a STATUS register whose READY and ERROR bits belong to the device, and
 * the passphrase engine (PP_COUNT, PP_CMD -> PP_STATUS, PP_LENGTH,
 * PP_BUFFER).  Callers serialize access with the device lock.
 */

#include <linux/kernel.h>
#include <linux/string.h>

#include "mock_accel.h"

#define MOCK_ACCEL_SOFT_REVISION	1
#define MOCK_ACCEL_SOFT_FW_VERSION	((1 << 16) | (0 << 8) | 0)	/* 1.0.0 */

static u32 rf_get(struct mock_accel_regfile *rf, unsigned int off)
{
	return le32_to_cpu(rf->words[off / 4]);
}

static void rf_set(struct mock_accel_regfile *rf, unsigned int off, u32 val)
{
	rf->words[off / 4] = cpu_to_le32(val);
}

void mock_accel_regfile_init(struct mock_accel_regfile *rf,
			     const u8 uuid[16], u64 memory_size, u32 caps)
{
	memset(rf, 0, sizeof(*rf));
	rf_set(rf, MOCK_ACCEL_REG_DEVICE_ID, MOCK_ACCEL_DEVICE_ID);
	rf_set(rf, MOCK_ACCEL_REG_REVISION, MOCK_ACCEL_SOFT_REVISION);
	memcpy(&rf->bytes[MOCK_ACCEL_REG_UUID], uuid, 16);
	rf_set(rf, MOCK_ACCEL_REG_MEMORY_SIZE, lower_32_bits(memory_size));
	rf_set(rf, MOCK_ACCEL_REG_MEMORY_SIZE + 4, upper_32_bits(memory_size));
	rf_set(rf, MOCK_ACCEL_REG_CAPABILITIES, caps);
	rf_set(rf, MOCK_ACCEL_REG_STATUS, MOCK_ACCEL_STATUS_READY);
	rf_set(rf, MOCK_ACCEL_REG_FW_VERSION, MOCK_ACCEL_SOFT_FW_VERSION);
	rf_set(rf, MOCK_ACCEL_REG_PP_STATUS, MOCK_ACCEL_PP_IDLE);
	rf_set(rf, MOCK_ACCEL_REG_PP_COUNT, MOCK_ACCEL_PASSPHRASE_DEFAULT_WORDS);
}

static bool rf_valid(unsigned int off)
{
	return off < MOCK_ACCEL_BAR_SIZE && IS_ALIGNED(off, 4);
}

u32 mock_accel_regfile_read32(struct mock_accel_regfile *rf,
			      unsigned int off)
{
	if (!rf_valid(off))
		return ~0U;	/* like a read nobody answers on the bus */
	if (off == MOCK_ACCEL_REG_PP_CMD)
		return 0;	/* write-only */
	return rf_get(rf, off);
}

/* PP_CMD: fill PP_BUFFER with PP_COUNT words from the wordlist */
static void rf_pp_generate(struct mock_accel_regfile *rf)
{
	char *buf = (char *)&rf->bytes[MOCK_ACCEL_REG_PP_BUFFER];
	unsigned int count = rf_get(rf, MOCK_ACCEL_REG_PP_COUNT);
	int ret = -EIO;

	memset(buf, 0, MOCK_ACCEL_PASSPHRASE_LEN);
	if (!(rf_get(rf, MOCK_ACCEL_REG_STATUS) & MOCK_ACCEL_STATUS_ERROR))
		ret = mock_accel_wordlist_generate(count, buf,
						   MOCK_ACCEL_PASSPHRASE_LEN);
	if (ret) {
		memset(buf, 0, MOCK_ACCEL_PASSPHRASE_LEN);
		rf_set(rf, MOCK_ACCEL_REG_PP_LENGTH, 0);
		rf_set(rf, MOCK_ACCEL_REG_PP_STATUS, MOCK_ACCEL_PP_ERROR);
		return;
	}
	rf_set(rf, MOCK_ACCEL_REG_PP_LENGTH,
	       strnlen(buf, MOCK_ACCEL_PASSPHRASE_LEN - 1));
	rf_set(rf, MOCK_ACCEL_REG_PP_STATUS, MOCK_ACCEL_PP_DONE);
}

void mock_accel_regfile_write32(struct mock_accel_regfile *rf,
				unsigned int off, u32 val)
{
	u32 status;

	if (!rf_valid(off))
		return;

	switch (off) {
	case MOCK_ACCEL_REG_STATUS:
		/* only ALLOCATED belongs to the host */
		status = rf_get(rf, off) & ~MOCK_ACCEL_STATUS_ALLOCATED;
		status |= val & MOCK_ACCEL_STATUS_ALLOCATED;
		rf_set(rf, off, status);
		break;
	case MOCK_ACCEL_REG_PP_COUNT:
		if (val >= 1 && val <= MOCK_ACCEL_PASSPHRASE_MAX_WORDS)
			rf_set(rf, off, val);
		break;
	case MOCK_ACCEL_REG_PP_CMD:
		if (val == MOCK_ACCEL_PP_CMD_GENERATE)
			rf_pp_generate(rf);
		break;
	default:
		/* read-only register: the write is dropped */
		break;
	}
}

/* fault injection: the device raises or drops its ERROR bit */
void mock_accel_regfile_set_fault(struct mock_accel_regfile *rf, bool fail)
{
	u32 status = rf_get(rf, MOCK_ACCEL_REG_STATUS);

	if (fail)
		status |= MOCK_ACCEL_STATUS_ERROR;
	else
		status &= ~MOCK_ACCEL_STATUS_ERROR;
	rf_set(rf, MOCK_ACCEL_REG_STATUS, status);
}
