// SPDX-License-Identifier: GPL-2.0
/*
 * mock-accel: module init/exit, the device class, the character device
 * region and the registry of devices.
 *
 * Lifetime: a struct mock_accel_dev is reference counted.  The creator
 * holds the first reference, every open file holds one, and a VF holds one
 * on its PF.  mock_accel_dev_unregister() makes the device unreachable
 * (class device, /dev node and registry), then marks it dead under its
 * lock, so that open files get -ENODEV and never touch the backend again.
 * The memory goes away with the last reference.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uidgid.h>
#include <linux/user_namespace.h>

#include "compat.h"
#include "mock_accel.h"

unsigned short mock_accel_dev_mode = 0600;
module_param_named(dev_mode, mock_accel_dev_mode, ushort, 0444);
MODULE_PARM_DESC(dev_mode, "mode of the /dev nodes (default 0600)");

/*
 * The group of the devices' sysfs files, and with it a group-writable
 * status (0664): a non-root agent in that group marks its devices
 * allocated and can write nothing else.  -1: root:root, status 0644.
 */
int mock_accel_status_gid = -1;
module_param_named(status_gid, mock_accel_status_gid, int, 0444);
MODULE_PARM_DESC(status_gid,
		 "group of the devices' sysfs files; status becomes 0664 (default -1: root, 0644)");

/* protects mock_accel_minors, mock_accel_ids, ->published, ->vfs */
DEFINE_MUTEX(mock_accel_lock);
static DEFINE_IDR(mock_accel_minors);
static DEFINE_IDA(mock_accel_ids);
static dev_t mock_accel_devt;
/* /sys/devices/mock-accel: parent of the software functions */
struct device *mock_accel_root;

static char *mock_accel_devnode(MOCK_ACCEL_DEVNODE_CONST struct device *dev,
				umode_t *mode)
{
	if (mode)
		*mode = mock_accel_dev_mode;
	return NULL;
}

/* the class devices' directories and attribute files get status_gid */
static void mock_accel_get_ownership(MOCK_ACCEL_OWNERSHIP_CONST struct device *dev,
				     kuid_t *uid, kgid_t *gid)
{
	if (mock_accel_status_gid >= 0)
		*gid = make_kgid(&init_user_ns, mock_accel_status_gid);
}

static struct class mock_accel_class = {
	.name = MOCK_ACCEL_NAME,
	.devnode = mock_accel_devnode,
	.get_ownership = mock_accel_get_ownership,
};

/**
 * mock_accel_id_alloc - reserve a PF number
 * @id: the number wanted, or -1 for the lowest free one
 *
 * Return: the number, -EEXIST when @id is taken, -ENOSPC when all are.
 */
int mock_accel_id_alloc(int id)
{
	int ret;

	if (id >= MOCK_ACCEL_MAX_PFS)
		return -EINVAL;
	mutex_lock(&mock_accel_lock);
	if (id < 0)
		ret = ida_alloc_max(&mock_accel_ids, MOCK_ACCEL_MAX_PFS - 1,
				    GFP_KERNEL);
	else
		ret = ida_alloc_range(&mock_accel_ids, id, id, GFP_KERNEL);
	mutex_unlock(&mock_accel_lock);
	if (id >= 0 && ret == -ENOSPC)
		ret = -EEXIST;
	return ret;
}

void mock_accel_id_free(int id)
{
	mutex_lock(&mock_accel_lock);
	ida_free(&mock_accel_ids, id);
	mutex_unlock(&mock_accel_lock);
}

/*
 * The longest name the format below can print: both numbers at the largest
 * unsigned int. It fits, so no name is ever cut, whatever N and M are (the
 * ID allocator and the SR-IOV code keep them far below: mock255-vf63).
 */
#define MOCK_ACCEL_LONGEST_NAME		"mock4294967295-vf4294967295"

/**
 * mock_accel_dev_set_name - name a device "mockN" (PF N) or "mockN-vfM"
 * @adev: a device whose @id and @vf are set
 */
void mock_accel_dev_set_name(struct mock_accel_dev *adev)
{
	unsigned int id = adev->id, vf = adev->vf;

	BUILD_BUG_ON(sizeof(MOCK_ACCEL_LONGEST_NAME) > MOCK_ACCEL_NAME_LEN);
	if (mock_accel_is_vf(adev))
		snprintf(adev->name, sizeof(adev->name), "mock%u-vf%u", id, vf);
	else
		snprintf(adev->name, sizeof(adev->name), "mock%u", id);
}

struct mock_accel_dev *
mock_accel_dev_alloc(const struct mock_accel_backend *ops, void *priv)
{
	struct mock_accel_dev *adev;

	adev = kzalloc(sizeof(*adev), GFP_KERNEL);
	if (!adev)
		return NULL;
	kref_init(&adev->kref);
	mutex_init(&adev->lock);
	mutex_init(&adev->sriov_lock);
	INIT_LIST_HEAD(&adev->vfs);
	INIT_LIST_HEAD(&adev->vf_node);
	atomic_set(&adev->open_count, 0);
	adev->ops = ops;
	adev->priv = priv;
	adev->vf = -1;
	adev->numa_node = NUMA_NO_NODE;
	adev->minor = -1;
	adev->pp_count = MOCK_ACCEL_PASSPHRASE_DEFAULT_WORDS;
	return adev;
}

static void mock_accel_dev_release(struct kref *kref)
{
	struct mock_accel_dev *adev =
		container_of(kref, struct mock_accel_dev, kref);
	struct mock_accel_dev *pf = adev->pf;

	if (adev->ops && adev->ops->release)
		adev->ops->release(adev);
	mutex_destroy(&adev->sriov_lock);
	mutex_destroy(&adev->lock);
	kfree(adev);
	if (pf)
		mock_accel_dev_put(pf);
}

void mock_accel_dev_get(struct mock_accel_dev *adev)
{
	kref_get(&adev->kref);
}

void mock_accel_dev_put(struct mock_accel_dev *adev)
{
	if (adev)
		kref_put(&adev->kref, mock_accel_dev_release);
}

/**
 * mock_accel_dev_get_by_minor - find a published device for open()
 * @minor: minor number of the /dev node
 *
 * Return: the device with a new reference and its open count raised, or
 * NULL when it is gone or going.
 */
struct mock_accel_dev *mock_accel_dev_get_by_minor(unsigned int minor)
{
	struct mock_accel_dev *adev;

	mutex_lock(&mock_accel_lock);
	adev = idr_find(&mock_accel_minors, minor);
	if (adev && adev->published) {
		kref_get(&adev->kref);
		atomic_inc(&adev->open_count);
	} else {
		adev = NULL;
	}
	mutex_unlock(&mock_accel_lock);
	return adev;
}

/* stop open() from finding @adev; caller holds mock_accel_lock */
static void mock_accel_dev_unpublish_locked(struct mock_accel_dev *adev)
{
	lockdep_assert_held(&mock_accel_lock);
	if (adev->published) {
		idr_replace(&mock_accel_minors, NULL, adev->minor);
		adev->published = false;
	}
}

static void mock_accel_dev_mark_dead(struct mock_accel_dev *adev)
{
	mutex_lock(&adev->lock);
	adev->dead = true;
	mutex_unlock(&adev->lock);
}

/**
 * mock_accel_dev_register - make a device visible
 * @adev: device with its names, parent and backend filled in; a VF has
 *	->pf set (with a reference that the VF now owns)
 *
 * Creates the /dev node and the class device.  On failure the caller still
 * owns its reference and drops it with mock_accel_dev_put().
 */
int mock_accel_dev_register(struct mock_accel_dev *adev)
{
	struct device *dev;
	struct cdev *cdev;
	int minor, ret;

	mutex_lock(&mock_accel_lock);
	minor = idr_alloc(&mock_accel_minors, NULL, 0, MOCK_ACCEL_MAX_MINORS,
			  GFP_KERNEL);
	mutex_unlock(&mock_accel_lock);
	if (minor < 0)
		return minor;
	adev->minor = minor;
	adev->devt = MKDEV(MAJOR(mock_accel_devt), minor);

	cdev = cdev_alloc();
	if (!cdev) {
		ret = -ENOMEM;
		goto err_minor;
	}
	cdev->owner = THIS_MODULE;
	cdev->ops = &mock_accel_fops;
	ret = cdev_add(cdev, adev->devt, 1);
	if (ret) {
		kobject_put(&cdev->kobj);
		goto err_minor;
	}
	adev->cdev = cdev;

	mutex_lock(&mock_accel_lock);
	idr_replace(&mock_accel_minors, adev, minor);
	adev->published = true;
	if (adev->pf)
		list_add_tail(&adev->vf_node, &adev->pf->vfs);
	mutex_unlock(&mock_accel_lock);

	dev = device_create_with_groups(&mock_accel_class, adev->parent,
					adev->devt, adev,
					mock_accel_dev_groups, "%s",
					adev->name);
	if (IS_ERR(dev)) {
		ret = PTR_ERR(dev);
		goto err_publish;
	}
	adev->dev = dev;
	return 0;

err_publish:
	mutex_lock(&mock_accel_lock);
	mock_accel_dev_unpublish_locked(adev);
	list_del_init(&adev->vf_node);
	mutex_unlock(&mock_accel_lock);
	cdev_del(adev->cdev);
	adev->cdev = NULL;
	/* an open() that got in before the failure sees a dead device */
	mock_accel_dev_mark_dead(adev);
err_minor:
	mutex_lock(&mock_accel_lock);
	idr_remove(&mock_accel_minors, minor);
	mutex_unlock(&mock_accel_lock);
	adev->minor = -1;
	return ret;
}

/**
 * mock_accel_dev_unregister - undo mock_accel_dev_register()
 * @adev: registered device
 *
 * Waits for running sysfs callbacks; afterwards open files see -ENODEV.
 * The caller keeps its reference.
 */
void mock_accel_dev_unregister(struct mock_accel_dev *adev)
{
	mutex_lock(&mock_accel_lock);
	mock_accel_dev_unpublish_locked(adev);
	list_del_init(&adev->vf_node);
	mutex_unlock(&mock_accel_lock);

	device_unregister(adev->dev);
	adev->dev = NULL;
	cdev_del(adev->cdev);
	adev->cdev = NULL;
	mock_accel_dev_mark_dead(adev);

	mutex_lock(&mock_accel_lock);
	idr_remove(&mock_accel_minors, adev->minor);
	mutex_unlock(&mock_accel_lock);
	adev->minor = -1;
}

/**
 * mock_accel_vfs_unpublish - take the VFs of @pf away from open()
 * @pf: physical function, its sriov_lock held
 *
 * Return: 0, or -EBUSY (and nothing changed) when a VF's /dev node is open.
 */
int mock_accel_vfs_unpublish(struct mock_accel_dev *pf)
{
	struct mock_accel_dev *vf;
	int ret = 0;

	mutex_lock(&mock_accel_lock);
	list_for_each_entry(vf, &pf->vfs, vf_node) {
		if (atomic_read(&vf->open_count)) {
			ret = -EBUSY;
			goto out;
		}
	}
	list_for_each_entry(vf, &pf->vfs, vf_node)
		mock_accel_dev_unpublish_locked(vf);
out:
	mutex_unlock(&mock_accel_lock);
	return ret;
}

static int __init mock_accel_init(void)
{
	int ret;

	BUILD_BUG_ON(sizeof(struct mock_accel_passphrase) != 257);
	BUILD_BUG_ON(sizeof(struct mock_accel_info) != 184);

	if (mock_accel_dev_mode & ~0777) {
		pr_err("invalid dev_mode %#o (must be within 0777)\n",
		       mock_accel_dev_mode);
		return -EINVAL;
	}
	if (mock_accel_status_gid < -1 ||
	    (mock_accel_status_gid >= 0 &&
	     !gid_valid(make_kgid(&init_user_ns, mock_accel_status_gid)))) {
		pr_err("invalid status_gid %d (must be -1 or a group id)\n",
		       mock_accel_status_gid);
		return -EINVAL;
	}
	ret = mock_accel_soft_check_params();
	if (ret)
		return ret;

	ret = alloc_chrdev_region(&mock_accel_devt, 0, MOCK_ACCEL_MAX_MINORS,
				  MOCK_ACCEL_NAME);
	if (ret)
		return ret;

	ret = class_register(&mock_accel_class);
	if (ret)
		goto err_chrdev;

	mock_accel_root = root_device_register(MOCK_ACCEL_NAME);
	if (IS_ERR(mock_accel_root)) {
		ret = PTR_ERR(mock_accel_root);
		goto err_class;
	}

	/* a missing or bad wordlist is not fatal: passphrases say -ENOENT */
	mock_accel_wordlist_load(mock_accel_root, true);

	/* the software bus and the devices of the module parameters */
	ret = mock_accel_soft_init();
	if (ret)
		goto err_root;

	ret = mock_accel_pci_init();
	if (ret)
		goto err_soft;

	if (mock_accel_backend_is_pci()) {
		struct mock_accel_layout lay;

		mock_accel_soft_layout(&lay);
		ret = mock_accel_vpci_init(&lay);
		if (ret)
			goto err_pci;
	}
	return 0;

err_pci:
	mock_accel_pci_exit();
err_soft:
	mock_accel_soft_exit();
err_root:
	mock_accel_wordlist_unload();
	root_device_unregister(mock_accel_root);
err_class:
	class_unregister(&mock_accel_class);
err_chrdev:
	unregister_chrdev_region(mock_accel_devt, MOCK_ACCEL_MAX_MINORS);
	return ret;
}

static void __exit mock_accel_exit(void)
{
	mock_accel_vpci_exit();
	mock_accel_pci_exit();
	mock_accel_soft_exit();
	mock_accel_wordlist_unload();
	root_device_unregister(mock_accel_root);
	class_unregister(&mock_accel_class);
	unregister_chrdev_region(mock_accel_devt, MOCK_ACCEL_MAX_MINORS);
	idr_destroy(&mock_accel_minors);
	ida_destroy(&mock_accel_ids);
}

module_init(mock_accel_init);
module_exit(mock_accel_exit);

MODULE_DESCRIPTION("Mock PCIe accelerator devices for DRA driver testing");
MODULE_AUTHOR("mock-accel authors");
MODULE_LICENSE("GPL");
MODULE_FIRMWARE(MOCK_ACCEL_FW_NAME);
