// SPDX-License-Identifier: GPL-2.0
/*
 * mock-accel: the passphrase wordlist, loaded as firmware.
 *
 * One lower-case word per line ([a-z-], 1..20 bytes; a line ends in "\n" or
 * "\r\n").  Twenty bytes is the longest word of which twelve, joined by
 * '-', fit the 255 bytes of a passphrase, so a list that loads never fails
 * a passphrase later.  The list is shared by all devices; it is loaded at
 * module load and again on a write to a device's load_wordlist attribute.
 * A list that breaks a rule is refused with one kernel log line naming the
 * line and the rule; a failed reload keeps the list that was loaded before.
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

#define MOCK_ACCEL_WORD_MAX	20
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

/*
 * The line of @data starting at @pos: sets @len to its length without the
 * line end ("\n" or "\r\n"; the last line may have none) and returns where
 * the next line starts.
 */
static size_t mock_accel_wordlist_line(const u8 *data, size_t size,
				       size_t pos, size_t *len)
{
	const u8 *nl = memchr(data + pos, '\n', size - pos);
	size_t end = nl ? nl - data : size;

	*len = end - pos;
	if (*len && data[end - 1] == '\r')
		(*len)--;
	return nl ? end + 1 : size;
}

/*
 * Count the words of @data; on content that is not a wordlist, say why in
 * one log line and return -EINVAL.
 */
static int mock_accel_wordlist_count(const u8 *data, size_t size)
{
	const char *name = mock_accel_firmware_name;
	size_t pos = 0, start, len, i;
	u32 count = 0;

	/* twelve words, eleven '-' and the NUL fill at most the buffer */
	BUILD_BUG_ON(MOCK_ACCEL_PASSPHRASE_MAX_WORDS * (MOCK_ACCEL_WORD_MAX + 1) >
		     MOCK_ACCEL_PASSPHRASE_LEN);
	BUILD_BUG_ON(MOCK_ACCEL_PASSPHRASE_MAX_WORDS * (MOCK_ACCEL_WORD_MAX + 2) <=
		     MOCK_ACCEL_PASSPHRASE_LEN);

	while (pos < size) {
		start = pos;
		pos = mock_accel_wordlist_line(data, size, pos, &len);
		if (++count > MOCK_ACCEL_WORDS_MAX) {
			pr_warn("wordlist firmware %s has more than %lu words; refused\n",
				name, MOCK_ACCEL_WORDS_MAX);
			return -EINVAL;
		}
		for (i = 0; i < len && mock_accel_word_char(data[start + i]); i++)
			;
		if (!len || i < len) {
			pr_warn("wordlist firmware %s line %u is not a word (one of [a-z-] per line, lines end in \\n or \\r\\n); refused\n",
				name, count);
			return -EINVAL;
		}
		if (len > MOCK_ACCEL_WORD_MAX) {
			pr_warn("wordlist firmware %s line %u: a word of %zu bytes; 12 words joined by '-' must fit a %d-byte passphrase, so words have at most %d bytes; refused\n",
				name, count, len, MOCK_ACCEL_PASSPHRASE_LEN - 1,
				MOCK_ACCEL_WORD_MAX);
			return -EINVAL;
		}
	}
	if (!count) {
		pr_warn("wordlist firmware %s has no words; refused\n", name);
		return -EINVAL;
	}
	return count;
}

static struct mock_accel_wordlist *mock_accel_wordlist_parse(const u8 *data,
							     size_t size)
{
	struct mock_accel_wordlist *wl;
	size_t pos = 0, start, len;
	u32 n = 0;
	int count;

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

	/* each word ends where its line end ("\n", "\r\n") or the data ends */
	while (pos < size && n < count) {
		start = pos;
		pos = mock_accel_wordlist_line(data, size, pos, &len);
		wl->data[start + len] = '\0';
		wl->words[n++] = &wl->data[start];
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
	if (IS_ERR(wl))
		return PTR_ERR(wl);	/* -EINVAL was logged */

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
