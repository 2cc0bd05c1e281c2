// SPDX-License-Identifier: GPL-2.0
/*
 * mock-accel: the device model as the driver sees it, on top of the
 * register accessors of either backend: identity registers, the STATUS
 * ownership rules, fault injection, the passphrase engine and SR-IOV.
 *
 * Every register access happens under adev->lock after checking that the
 * device is not dead, so a removed device is never touched again.
 */

#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/string.h>

#include "mock_accel.h"

/* PP_STATUS polling for hardware engines; the software one is immediate */
#define MOCK_ACCEL_PP_POLL_US		50
#define MOCK_ACCEL_PP_POLL_TRIES	2000	/* 100 ms or more */

static u32 rd(struct mock_accel_dev *adev, unsigned int off)
{
	lockdep_assert_held(&adev->lock);
	return adev->ops->read32(adev, off);
}

static void wr(struct mock_accel_dev *adev, unsigned int off, u32 val)
{
	lockdep_assert_held(&adev->lock);
	adev->ops->write32(adev, off, val);
}

int mock_accel_reg_read(struct mock_accel_dev *adev, unsigned int off,
			u32 *val)
{
	int ret = 0;

	mutex_lock(&adev->lock);
	if (adev->dead)
		ret = -ENODEV;
	else
		*val = rd(adev, off);
	mutex_unlock(&adev->lock);
	return ret;
}

static void __mock_accel_read_uuid(struct mock_accel_dev *adev, u8 uuid[16])
{
	unsigned int i;
	__le32 w;

	for (i = 0; i < 16; i += 4) {
		w = cpu_to_le32(rd(adev, MOCK_ACCEL_REG_UUID + i));
		memcpy(&uuid[i], &w, sizeof(w));
	}
}

static u64 __mock_accel_memory_size(struct mock_accel_dev *adev)
{
	u64 lo = rd(adev, MOCK_ACCEL_REG_MEMORY_SIZE);
	u64 hi = rd(adev, MOCK_ACCEL_REG_MEMORY_SIZE + 4);

	return (hi << 32) | lo;
}

int mock_accel_read_uuid(struct mock_accel_dev *adev, u8 uuid[16])
{
	int ret = 0;

	mutex_lock(&adev->lock);
	if (adev->dead)
		ret = -ENODEV;
	else
		__mock_accel_read_uuid(adev, uuid);
	mutex_unlock(&adev->lock);
	return ret;
}

int mock_accel_read_memory_size(struct mock_accel_dev *adev, u64 *size)
{
	int ret = 0;

	mutex_lock(&adev->lock);
	if (adev->dead)
		ret = -ENODEV;
	else
		*size = __mock_accel_memory_size(adev);
	mutex_unlock(&adev->lock);
	return ret;
}

/**
 * mock_accel_write_status - write the STATUS register from the host
 * @adev: device
 * @val: new value; only ALLOCATED is taken, READY and ERROR are the
 *	device's and ignored
 *
 * Return: 0, -EINVAL when @val has an unknown bit, -ENODEV when removed.
 */
int mock_accel_write_status(struct mock_accel_dev *adev, u32 val)
{
	u32 old = 0, new = 0;
	int ret = 0;

	if (val & ~MOCK_ACCEL_STATUS_MASK)
		return -EINVAL;
	mutex_lock(&adev->lock);
	if (adev->dead) {
		ret = -ENODEV;
	} else {
		old = rd(adev, MOCK_ACCEL_REG_STATUS);
		wr(adev, MOCK_ACCEL_REG_STATUS,
		   val & MOCK_ACCEL_STATUS_ALLOCATED);
		new = rd(adev, MOCK_ACCEL_REG_STATUS);
	}
	mutex_unlock(&adev->lock);
	mock_accel_status_changed(adev, old, new);
	return ret;
}

int mock_accel_set_fault(struct mock_accel_dev *adev, bool fail)
{
	u32 old = 0, new = 0;
	int ret = 0;

	mutex_lock(&adev->lock);
	if (adev->dead) {
		ret = -ENODEV;
	} else {
		old = rd(adev, MOCK_ACCEL_REG_STATUS);
		adev->ops->set_fault(adev, fail);
		new = rd(adev, MOCK_ACCEL_REG_STATUS);
	}
	mutex_unlock(&adev->lock);
	mock_accel_status_changed(adev, old, new);
	return ret;
}

/* run the passphrase engine; adev->lock held */
static int __mock_accel_passphrase(struct mock_accel_dev *adev,
				   unsigned int count, char *buf, size_t size)
{
	u8 tmp[MOCK_ACCEL_PASSPHRASE_LEN];
	unsigned int i, tries = 0;
	u32 st, len;
	__le32 w;

	if (adev->dead)
		return -ENODEV;
	if (!count || count > MOCK_ACCEL_PASSPHRASE_MAX_WORDS || !size)
		return -EINVAL;
	if (!mock_accel_wordlist_size())
		return -ENOENT;
	if (rd(adev, MOCK_ACCEL_REG_STATUS) & MOCK_ACCEL_STATUS_ERROR)
		return -EIO;

	wr(adev, MOCK_ACCEL_REG_PP_COUNT, count);
	wr(adev, MOCK_ACCEL_REG_PP_CMD, MOCK_ACCEL_PP_CMD_GENERATE);
	for (;;) {
		st = rd(adev, MOCK_ACCEL_REG_PP_STATUS);
		if (st == MOCK_ACCEL_PP_DONE)
			break;
		if (st == MOCK_ACCEL_PP_ERROR ||
		    ++tries > MOCK_ACCEL_PP_POLL_TRIES)
			/* the list may have gone away meanwhile */
			return mock_accel_wordlist_size() ? -EIO : -ENOENT;
		usleep_range(MOCK_ACCEL_PP_POLL_US, 2 * MOCK_ACCEL_PP_POLL_US);
	}

	len = rd(adev, MOCK_ACCEL_REG_PP_LENGTH);
	len = min_t(u32, len, MOCK_ACCEL_PASSPHRASE_LEN - 1);
	if (len >= size)
		return -ENOSPC;
	for (i = 0; i < len; i += 4) {
		w = cpu_to_le32(rd(adev, MOCK_ACCEL_REG_PP_BUFFER + i));
		memcpy(&tmp[i], &w, sizeof(w));
	}
	memcpy(buf, tmp, len);
	buf[len] = '\0';
	return 0;
}

/**
 * mock_accel_passphrase - generate a passphrase
 * @adev: device
 * @count: words, 1..12
 * @buf: output, NUL-terminated
 * @size: size of @buf
 *
 * Return: 0, -ENOENT without a wordlist, -EIO on a failed device,
 * -EINVAL for a bad @count, -ENODEV when removed.
 */
int mock_accel_passphrase(struct mock_accel_dev *adev, unsigned int count,
			  char *buf, size_t size)
{
	int ret;

	mutex_lock(&adev->lock);
	ret = __mock_accel_passphrase(adev, count, buf, size);
	mutex_unlock(&adev->lock);
	return ret;
}

unsigned int mock_accel_sriov_numvfs(struct mock_accel_dev *pf)
{
	if (mock_accel_is_vf(pf) || !pf->ops->sriov_numvfs)
		return 0;
	return pf->ops->sriov_numvfs(pf);
}

/**
 * mock_accel_sriov_set - change the number of VFs of a PF
 * @pf: physical function
 * @num_vfs: wanted number of VFs
 *
 * Same rules as the PCI core: the same value is a no-op, one non-zero
 * value to another is -EBUSY.  A change while a VF's /dev node is open is
 * -EBUSY as well.
 */
int mock_accel_sriov_set(struct mock_accel_dev *pf, unsigned int num_vfs)
{
	unsigned int cur;
	int ret = 0;

	if (mock_accel_is_vf(pf) || !pf->ops->sriov_configure)
		return -EINVAL;
	if (num_vfs > pf->total_vfs)
		return -EINVAL;

	mutex_lock(&pf->sriov_lock);
	cur = mock_accel_sriov_numvfs(pf);
	if (num_vfs == cur)
		goto out;
	if (cur && num_vfs) {
		ret = -EBUSY;
		goto out;
	}
	if (cur) {
		ret = mock_accel_vfs_unpublish(pf);
		if (ret)
			goto out;
	}
	ret = pf->ops->sriov_configure(pf, num_vfs);
	if (mock_accel_sriov_numvfs(pf) != cur)
		mock_accel_notify(pf, MOCK_ACCEL_CHANGED_SRIOV);
out:
	mutex_unlock(&pf->sriov_lock);
	return ret;
}

int mock_accel_get_info(struct mock_accel_dev *adev,
			struct mock_accel_info *info)
{
	u32 status;
	int ret = 0;

	memset(info, 0, sizeof(*info));
	mutex_lock(&adev->lock);
	if (adev->dead) {
		ret = -ENODEV;
		goto out;
	}
	__mock_accel_read_uuid(adev, info->uuid);
	info->memory_size = __mock_accel_memory_size(adev);
	info->numa_node = adev->numa_node;
	info->capabilities = rd(adev, MOCK_ACCEL_REG_CAPABILITIES);
	status = rd(adev, MOCK_ACCEL_REG_STATUS);
	info->status = status;
	info->fw_version = rd(adev, MOCK_ACCEL_REG_FW_VERSION);
	info->revision = rd(adev, MOCK_ACCEL_REG_REVISION);
	info->wordlist_size = mock_accel_wordlist_size();
	info->wordlist_loaded = info->wordlist_size ? 1 : 0;
	if (mock_accel_is_vf(adev)) {
		info->device_type = MOCK_ACCEL_TYPE_VF;
	} else {
		info->device_type = MOCK_ACCEL_TYPE_PF;
		info->sriov_totalvfs = adev->total_vfs;
		info->sriov_numvfs = mock_accel_sriov_numvfs(adev);
	}
	info->health = (status & MOCK_ACCEL_STATUS_ERROR) ?
		MOCK_ACCEL_HEALTH_FAILED : MOCK_ACCEL_HEALTH_OK;
	strscpy(info->name, adev->name, sizeof(info->name));
	strscpy(info->physfn, adev->physfn, sizeof(info->physfn));
	strscpy(info->pci_address, adev->pci_address,
		sizeof(info->pci_address));
	strscpy(info->pcie_root, adev->pcie_root, sizeof(info->pcie_root));
out:
	mutex_unlock(&adev->lock);
	return ret;
}

/**
 * mock_accel_format_text - the text read() returns
 * @adev: device
 * @buf: output
 * @size: size of @buf
 *
 * Return: length of the text, or -ENODEV when removed.
 */
ssize_t mock_accel_format_text(struct mock_accel_dev *adev, char *buf,
			       size_t size)
{
	char pp[MOCK_ACCEL_PASSPHRASE_LEN];
	u8 uuid[16];
	u32 words;
	ssize_t n;

	mutex_lock(&adev->lock);
	if (adev->dead) {
		mutex_unlock(&adev->lock);
		return -ENODEV;
	}
	__mock_accel_read_uuid(adev, uuid);
	n = scnprintf(buf, size,
		      "Mock Accelerator Device\n"
		      "Name: %s\n"
		      "UUID: %pUb\n"
		      "Memory: %llu bytes\n"
		      "Status: 0x%08x\n"
		      "NUMA Node: %d\n",
		      adev->name, uuid, __mock_accel_memory_size(adev),
		      rd(adev, MOCK_ACCEL_REG_STATUS), adev->numa_node);
	words = mock_accel_wordlist_size();
	if (!words) {
		n += scnprintf(buf + n, size - n, "Wordlist: not loaded\n");
	} else {
		n += scnprintf(buf + n, size - n, "Wordlist: %u words loaded\n",
			       words);
		/* a failed device has no sample */
		if (!__mock_accel_passphrase(adev,
					     MOCK_ACCEL_PASSPHRASE_DEFAULT_WORDS,
					     pp, sizeof(pp)))
			n += scnprintf(buf + n, size - n,
				       "Sample Passphrase (%u words): %s\n",
				       MOCK_ACCEL_PASSPHRASE_DEFAULT_WORDS, pp);
	}
	mutex_unlock(&adev->lock);
	return n;
}
