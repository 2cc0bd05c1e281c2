// SPDX-License-Identifier: GPL-2.0
/*
 * mock-accel: attributes of the class devices, /sys/class/mock-accel/<name>/.
 *
 * Every store parses the whole value with kstrto*() and answers -EINVAL
 * for anything else, changing nothing.  Destructive stores (inject_fault,
 * sriov_numvfs, load_wordlist) need CAP_SYS_ADMIN: uid 0 without it gets
 * -EPERM.  passphrase is 0400: each read drives the device's engine.
 * A value that changes is announced by mock_accel_notify(): poll() on the
 * attribute and a KOBJ_CHANGE uevent.
 */

#include <linux/capability.h>
#include <linux/device.h>
#include <linux/kernel.h>
#include <linux/kobject.h>
#include <linux/sysfs.h>

#include "mock_accel.h"

static struct mock_accel_dev *to_adev(struct device *dev)
{
	return dev_get_drvdata(dev);
}

static ssize_t mock_accel_show_reg(struct device *dev, char *buf,
				   unsigned int off, const char *fmt)
{
	u32 val;
	int ret;

	ret = mock_accel_reg_read(to_adev(dev), off, &val);
	if (ret)
		return ret;
	return sysfs_emit(buf, fmt, val);
}

static ssize_t uuid_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	u8 uuid[16];
	int ret;

	ret = mock_accel_read_uuid(to_adev(dev), uuid);
	if (ret)
		return ret;
	return sysfs_emit(buf, "%pUb\n", uuid);
}
static DEVICE_ATTR_RO(uuid);

static ssize_t memory_size_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	u64 size;
	int ret;

	ret = mock_accel_read_memory_size(to_adev(dev), &size);
	if (ret)
		return ret;
	return sysfs_emit(buf, "%llu\n", size);
}
static DEVICE_ATTR_RO(memory_size);

static ssize_t numa_node_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", to_adev(dev)->numa_node);
}
static DEVICE_ATTR_RO(numa_node);

static ssize_t capabilities_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	return mock_accel_show_reg(dev, buf, MOCK_ACCEL_REG_CAPABILITIES,
				   "0x%08x\n");
}
static DEVICE_ATTR_RO(capabilities);

static ssize_t status_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	return mock_accel_show_reg(dev, buf, MOCK_ACCEL_REG_STATUS,
				   "0x%08x\n");
}

static ssize_t status_store(struct device *dev, struct device_attribute *attr,
			    const char *buf, size_t count)
{
	u32 val;
	int ret;

	if (kstrtou32(buf, 0, &val))
		return -EINVAL;
	ret = mock_accel_write_status(to_adev(dev), val);
	return ret ? ret : count;
}
static DEVICE_ATTR_RW(status);

static ssize_t fw_version_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	u32 v;
	int ret;

	ret = mock_accel_reg_read(to_adev(dev), MOCK_ACCEL_REG_FW_VERSION, &v);
	if (ret)
		return ret;
	return sysfs_emit(buf, "%u.%u.%u\n", v >> 16, (v >> 8) & 0xff,
			  v & 0xff);
}
static DEVICE_ATTR_RO(fw_version);

static ssize_t revision_show(struct device *dev,
			     struct device_attribute *attr, char *buf)
{
	return mock_accel_show_reg(dev, buf, MOCK_ACCEL_REG_REVISION, "%u\n");
}
static DEVICE_ATTR_RO(revision);

static ssize_t device_type_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n",
			  mock_accel_is_vf(to_adev(dev)) ? "vf" : "pf");
}
static DEVICE_ATTR_RO(device_type);

static ssize_t physfn_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	return sysfs_emit(buf, "%s\n", to_adev(dev)->physfn);
}
static DEVICE_ATTR_RO(physfn);

static ssize_t pci_address_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", to_adev(dev)->pci_address);
}
static DEVICE_ATTR_RO(pci_address);

static ssize_t pcie_root_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", to_adev(dev)->pcie_root);
}
static DEVICE_ATTR_RO(pcie_root);

static ssize_t sriov_totalvfs_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", to_adev(dev)->total_vfs);
}
static DEVICE_ATTR_RO(sriov_totalvfs);

static ssize_t sriov_numvfs_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", mock_accel_sriov_numvfs(to_adev(dev)));
}

static ssize_t sriov_numvfs_store(struct device *dev,
				  struct device_attribute *attr,
				  const char *buf, size_t count)
{
	unsigned int num;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (kstrtouint(buf, 10, &num))
		return -EINVAL;
	ret = mock_accel_sriov_set(to_adev(dev), num);
	return ret ? ret : count;
}
static DEVICE_ATTR_RW(sriov_numvfs);

static ssize_t wordlist_loaded_show(struct device *dev,
				    struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", mock_accel_wordlist_size() ? 1 : 0);
}
static DEVICE_ATTR_RO(wordlist_loaded);

static ssize_t wordlist_size_show(struct device *dev,
				  struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", mock_accel_wordlist_size());
}
static DEVICE_ATTR_RO(wordlist_size);

static ssize_t load_wordlist_store(struct device *dev,
				   struct device_attribute *attr,
				   const char *buf, size_t count)
{
	unsigned int val;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (kstrtouint(buf, 10, &val) || val != 1)
		return -EINVAL;
	ret = mock_accel_wordlist_load(dev, false);
	return ret ? ret : count;
}
static DEVICE_ATTR_WO(load_wordlist);

static ssize_t passphrase_count_show(struct device *dev,
				     struct device_attribute *attr, char *buf)
{
	struct mock_accel_dev *adev = to_adev(dev);
	unsigned int n;

	mutex_lock(&adev->lock);
	n = adev->pp_count;
	mutex_unlock(&adev->lock);
	return sysfs_emit(buf, "%u\n", n);
}

static ssize_t passphrase_count_store(struct device *dev,
				      struct device_attribute *attr,
				      const char *buf, size_t count)
{
	struct mock_accel_dev *adev = to_adev(dev);
	unsigned int n;

	if (kstrtouint(buf, 10, &n) || n < 1 ||
	    n > MOCK_ACCEL_PASSPHRASE_MAX_WORDS)
		return -EINVAL;
	mutex_lock(&adev->lock);
	adev->pp_count = n;
	mutex_unlock(&adev->lock);
	return count;
}
static DEVICE_ATTR_RW(passphrase_count);

static ssize_t passphrase_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	struct mock_accel_dev *adev = to_adev(dev);
	char pp[MOCK_ACCEL_PASSPHRASE_LEN];
	unsigned int n;
	int ret;

	mutex_lock(&adev->lock);
	n = adev->pp_count;
	mutex_unlock(&adev->lock);
	ret = mock_accel_passphrase(adev, n, pp, sizeof(pp));
	if (ret)
		return ret;
	return sysfs_emit(buf, "%s\n", pp);
}
static DEVICE_ATTR_ADMIN_RO(passphrase);

static ssize_t health_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	u32 status;
	int ret;

	ret = mock_accel_reg_read(to_adev(dev), MOCK_ACCEL_REG_STATUS, &status);
	if (ret)
		return ret;
	return sysfs_emit(buf, "%s\n",
			  status & MOCK_ACCEL_STATUS_ERROR ? "failed" : "ok");
}
static DEVICE_ATTR_RO(health);

static ssize_t inject_fault_store(struct device *dev,
				  struct device_attribute *attr,
				  const char *buf, size_t count)
{
	unsigned int val;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (kstrtouint(buf, 10, &val) || val > 1)
		return -EINVAL;
	ret = mock_accel_set_fault(to_adev(dev), val);
	return ret ? ret : count;
}
static DEVICE_ATTR_WO(inject_fault);

static struct attribute *mock_accel_dev_attrs[] = {
	&dev_attr_uuid.attr,
	&dev_attr_memory_size.attr,
	&dev_attr_numa_node.attr,
	&dev_attr_capabilities.attr,
	&dev_attr_status.attr,
	&dev_attr_fw_version.attr,
	&dev_attr_revision.attr,
	&dev_attr_device_type.attr,
	&dev_attr_physfn.attr,
	&dev_attr_pci_address.attr,
	&dev_attr_pcie_root.attr,
	&dev_attr_sriov_totalvfs.attr,
	&dev_attr_sriov_numvfs.attr,
	&dev_attr_wordlist_loaded.attr,
	&dev_attr_wordlist_size.attr,
	&dev_attr_load_wordlist.attr,
	&dev_attr_passphrase_count.attr,
	&dev_attr_passphrase.attr,
	&dev_attr_health.attr,
	&dev_attr_inject_fault.attr,
	NULL
};

static umode_t mock_accel_attr_visible(struct kobject *kobj,
				       struct attribute *attr, int n)
{
	struct mock_accel_dev *adev = to_adev(kobj_to_dev(kobj));
	bool vf = mock_accel_is_vf(adev);

	if (attr == &dev_attr_physfn.attr && !vf)
		return 0;
	if ((attr == &dev_attr_sriov_totalvfs.attr ||
	     attr == &dev_attr_sriov_numvfs.attr) && vf)
		return 0;
	/* the one file the status_gid group may write (kmod/ABI.md) */
	if (attr == &dev_attr_status.attr && mock_accel_status_gid >= 0)
		return 0664;
	return attr->mode;
}

static const struct attribute_group mock_accel_dev_group = {
	.attrs = mock_accel_dev_attrs,
	.is_visible = mock_accel_attr_visible,
};

const struct attribute_group *mock_accel_dev_groups[] = {
	&mock_accel_dev_group,
	NULL
};

static const char *const mock_accel_change_names[] = {
	"status", "health", "sriov_numvfs",
};

/**
 * mock_accel_notify - announce that attributes of a device changed
 * @adev: the device
 * @changed: MOCK_ACCEL_CHANGED_* bits
 *
 * Wakes every poll() on the changed attribute files (POLLPRI | POLLERR;
 * the reader reads the file again to re-arm it) and sends one KOBJ_CHANGE
 * uevent with MOCK_ACCEL_CHANGE=<attribute>[,<attribute>].  Process context,
 * no device lock held; nothing happens for a device without a class device
 * (not registered yet, or being removed: add/remove have their own uevent).
 */
void mock_accel_notify(struct mock_accel_dev *adev, unsigned int changed)
{
	char env[64];
	char *envp[2] = { env, NULL };
	struct device *dev = adev->dev;
	unsigned int i;
	int n;

	if (!dev || !changed)
		return;
	n = scnprintf(env, sizeof(env), "MOCK_ACCEL_CHANGE=");
	for (i = 0; i < ARRAY_SIZE(mock_accel_change_names); i++) {
		if (!(changed & BIT(i)))
			continue;
		sysfs_notify(&dev->kobj, NULL, mock_accel_change_names[i]);
		n += scnprintf(env + n, sizeof(env) - n, "%s%s",
			       env[n - 1] == '=' ? "" : ",",
			       mock_accel_change_names[i]);
	}
	kobject_uevent_env(&dev->kobj, KOBJ_CHANGE, envp);
}

/* announce a STATUS register change from @old to @new (0, 0: none) */
void mock_accel_status_changed(struct mock_accel_dev *adev, u32 old, u32 new)
{
	unsigned int changed = 0;

	if (old != new)
		changed |= MOCK_ACCEL_CHANGED_STATUS;
	if ((old ^ new) & MOCK_ACCEL_STATUS_ERROR)
		changed |= MOCK_ACCEL_CHANGED_HEALTH;
	mock_accel_notify(adev, changed);
}
