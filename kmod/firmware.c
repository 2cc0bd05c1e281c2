// SPDX-License-Identifier: GPL-2.0
/*
 * mock-accel: the passphrase wordlist, loaded as firmware.
 *
 * One lower-case word per line ([a-z-], 1..31 bytes).  The list is shared
 * by all devices; it is loaded at module load and again on a write to a
 * device's load_wordlist attribute.  A failed reload keeps the list that
 * was loaded before.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bits.h>
#include <linux/firmware.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "compat.h"
#include "mock_accel.h"

#define MOCK_ACCEL_WORD_MAX	31
#define MOCK_ACCEL_WORDS_MAX	BIT(20)

char *mock_accel_firmware_name = MOCK_ACCEL_FW_NAME;
module_param_named(firmware_name, mock_accel_firmware_name, charp, 0444);
MODULE_PARM_DESC(firmware_name,
		 "wordlist firmware file (default " MOCK_ACCEL_FW_NAME ")");

struct mock_accel_wordlist {
	char *data;		/* the words, each NUL-terminated */
	const char **words;
	u32 count;
};

static DEFINE_MUTEX(mock_accel_wl_lock);
static struct mock_accel_wordlist *mock_accel_wl;	/* wl_lock */
static bool mock_accel_wl_missing_reported;		/* wl_lock */

static void mock_accel_wordlist_free(struct mock_accel_wordlist *wl)
{
	if (!wl)
		return;
	kvfree(wl->words);
	kvfree(wl->data);
	kfree(wl);
}

static bool mock_accel_word_char(char c)
{
	return (c >= 'a' && c <= 'z') || c == '-';
}

/* count the words of @data, or -EINVAL if any line is not a valid word */
static int mock_accel_wordlist_count(const u8 *data, size_t size)
{
	size_t i, len = 0;
	u32 count = 0;

	for (i = 0; i < size; i++) {
		if (data[i] == '\n') {
			if (!len)
				return -EINVAL;	/* empty line */
			count++;
			len = 0;
			continue;
		}
		if (!mock_accel_word_char(data[i]))
			return -EINVAL;
		if (++len > MOCK_ACCEL_WORD_MAX)
			return -EINVAL;
	}
	if (len)
		count++;	/* last line without a newline */
	if (!count || count > MOCK_ACCEL_WORDS_MAX)
		return -EINVAL;
	return count;
}

static struct mock_accel_wordlist *mock_accel_wordlist_parse(const u8 *data,
							     size_t size)
{
	struct mock_accel_wordlist *wl;
	size_t i;
	u32 n = 0;
	int count;
	char *p;

	count = mock_accel_wordlist_count(data, size);
	if (count < 0)
		return ERR_PTR(count);

	wl = kzalloc(sizeof(*wl), GFP_KERNEL);
	if (!wl)
		return ERR_PTR(-ENOMEM);
	wl->data = kvmalloc(size + 1, GFP_KERNEL);
	wl->words = kvmalloc_array(count, sizeof(*wl->words), GFP_KERNEL);
	if (!wl->data || !wl->words) {
		mock_accel_wordlist_free(wl);
		return ERR_PTR(-ENOMEM);
	}
	memcpy(wl->data, data, size);
	wl->data[size] = '\0';

	p = wl->data;
	for (i = 0; i <= size && n < count; i++) {
		if (wl->data[i] == '\n' || wl->data[i] == '\0') {
			wl->data[i] = '\0';
			wl->words[n++] = p;
			p = &wl->data[i + 1];
		}
	}
	wl->count = n;
	return wl;
}

/**
 * mock_accel_wordlist_load - (re)load the wordlist firmware
 * @dev: device to request the firmware for
 * @at_init: called from module init
 *
 * Return: 0, -ENOENT when the file is missing, -EINVAL when its content
 * is not a wordlist, or another negative errno.
 */
int mock_accel_wordlist_load(struct device *dev, bool at_init)
{
	const struct firmware *fw;
	struct mock_accel_wordlist *wl, *old;
	int ret;

	if (at_init)
		mock_accel_wl_missing_reported = false;

	ret = firmware_request_nowarn(&fw, mock_accel_firmware_name, dev);
	if (ret) {
		mutex_lock(&mock_accel_wl_lock);
		if (!mock_accel_wl_missing_reported) {
			mock_accel_wl_missing_reported = true;
			pr_warn("wordlist firmware %s not found (%d); passphrases are unavailable until it is installed and load_wordlist is written\n",
				mock_accel_firmware_name, ret);
		}
		mutex_unlock(&mock_accel_wl_lock);
		return -ENOENT;
	}

	wl = mock_accel_wordlist_parse(fw->data, fw->size);
	release_firmware(fw);
	if (IS_ERR(wl)) {
		ret = PTR_ERR(wl);
		if (ret == -EINVAL)
			pr_warn("wordlist firmware %s is not a wordlist (one word of [a-z-], 1..%d bytes, per line); ignored\n",
				mock_accel_firmware_name, MOCK_ACCEL_WORD_MAX);
		return ret;
	}

	mutex_lock(&mock_accel_wl_lock);
	old = mock_accel_wl;
	mock_accel_wl = wl;
	mutex_unlock(&mock_accel_wl_lock);
	mock_accel_wordlist_free(old);

	pr_info("loaded %u words from firmware %s\n", wl->count,
		mock_accel_firmware_name);
	return 0;
}

void mock_accel_wordlist_unload(void)
{
	struct mock_accel_wordlist *old;

	mutex_lock(&mock_accel_wl_lock);
	old = mock_accel_wl;
	mock_accel_wl = NULL;
	mutex_unlock(&mock_accel_wl_lock);
	mock_accel_wordlist_free(old);
}

u32 mock_accel_wordlist_size(void)
{
	u32 n;

	mutex_lock(&mock_accel_wl_lock);
	n = mock_accel_wl ? mock_accel_wl->count : 0;
	mutex_unlock(&mock_accel_wl_lock);
	return n;
}

/**
 * mock_accel_wordlist_generate - pick @count random words joined by '-'
 * @count: number of words, 1..12
 * @buf: output, NUL-terminated
 * @size: size of @buf
 *
 * Return: 0, -ENOENT without a wordlist, -EINVAL for a bad @count,
 * -ENOSPC when the words do not fit.
 */
int mock_accel_wordlist_generate(unsigned int count, char *buf, size_t size)
{
	const struct mock_accel_wordlist *wl;
	size_t pos = 0, len;
	unsigned int i;
	int ret = 0;

	if (!count || count > MOCK_ACCEL_PASSPHRASE_MAX_WORDS || !size)
		return -EINVAL;

	mutex_lock(&mock_accel_wl_lock);
	wl = mock_accel_wl;
	if (!wl) {
		ret = -ENOENT;
		goto out;
	}
	for (i = 0; i < count; i++) {
		const char *word = wl->words[mock_accel_random_below(wl->count)];

		len = strlen(word);
		if (pos + !!i + len >= size) {
			ret = -ENOSPC;
			goto out;
		}
		if (i)
			buf[pos++] = '-';
		memcpy(&buf[pos], word, len);
		pos += len;
	}
out:
	buf[ret ? 0 : pos] = '\0';
	mutex_unlock(&mock_accel_wl_lock);
	return ret;
}
