// SPDX-License-Identifier: GPL-2.0
/*
 * mock-accel: file operations of /dev/<name>: open, read, ioctl, release.
 *
 * An open file holds a reference to its device.  When the device is
 * removed the file stays valid but read() and ioctl() answer -ENODEV;
 * the reference goes away on close.
 */

#include <linux/fs.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "mock_accel.h"

#define MOCK_ACCEL_TEXT_SIZE	1024

struct mock_accel_file {
	struct mock_accel_dev *adev;
	struct mutex lock;	/* @text */
	char *text;		/* what read() returns, made on first read */
	size_t len;
};

static int mock_accel_open(struct inode *inode, struct file *file)
{
	struct mock_accel_file *mf;
	struct mock_accel_dev *adev;
	int ret;

	ret = nonseekable_open(inode, file);
	if (ret)
		return ret;
	mf = kzalloc(sizeof(*mf), GFP_KERNEL);
	if (!mf)
		return -ENOMEM;
	adev = mock_accel_dev_get_by_minor(iminor(inode));
	if (!adev) {
		kfree(mf);
		return -ENODEV;
	}
	mf->adev = adev;
	mutex_init(&mf->lock);
	file->private_data = mf;
	return 0;
}

static int mock_accel_release(struct inode *inode, struct file *file)
{
	struct mock_accel_file *mf = file->private_data;
	struct mock_accel_dev *adev = mf->adev;

	atomic_dec(&adev->open_count);
	mock_accel_dev_put(adev);
	mutex_destroy(&mf->lock);
	kfree(mf->text);
	kfree(mf);
	return 0;
}

static ssize_t mock_accel_read(struct file *file, char __user *ubuf,
			       size_t count, loff_t *ppos)
{
	struct mock_accel_file *mf = file->private_data;
	ssize_t ret;

	mutex_lock(&mf->lock);
	if (READ_ONCE(mf->adev->dead)) {
		ret = -ENODEV;
		goto out;
	}
	if (!mf->text) {
		char *text = kmalloc(MOCK_ACCEL_TEXT_SIZE, GFP_KERNEL);

		if (!text) {
			ret = -ENOMEM;
			goto out;
		}
		ret = mock_accel_format_text(mf->adev, text,
					     MOCK_ACCEL_TEXT_SIZE);
		if (ret < 0) {
			kfree(text);
			goto out;
		}
		mf->text = text;
		mf->len = ret;
	}
	ret = simple_read_from_buffer(ubuf, count, ppos, mf->text, mf->len);
out:
	mutex_unlock(&mf->lock);
	return ret;
}

static long mock_accel_ioctl_passphrase(struct mock_accel_dev *adev,
					void __user *argp)
{
	struct mock_accel_passphrase *req;
	unsigned int words;
	long ret;

	req = kzalloc(sizeof(*req), GFP_KERNEL);
	if (!req)
		return -ENOMEM;
	if (copy_from_user(req, argp, sizeof(*req))) {
		ret = -EFAULT;
		goto out;
	}
	words = req->word_count ? req->word_count :
		MOCK_ACCEL_PASSPHRASE_DEFAULT_WORDS;
	if (words > MOCK_ACCEL_PASSPHRASE_MAX_WORDS) {
		ret = -EINVAL;
		goto out;
	}
	memset(req->passphrase, 0, sizeof(req->passphrase));
	ret = mock_accel_passphrase(adev, words, req->passphrase,
				    sizeof(req->passphrase));
	if (ret)
		goto out;
	if (copy_to_user(argp, req, sizeof(*req)))
		ret = -EFAULT;
out:
	kfree(req);
	return ret;
}

static long mock_accel_ioctl(struct file *file, unsigned int cmd,
			     unsigned long arg)
{
	struct mock_accel_file *mf = file->private_data;
	struct mock_accel_dev *adev = mf->adev;
	void __user *argp = (void __user *)arg;
	struct mock_accel_info info;
	u32 status;
	int ret;

	if (READ_ONCE(adev->dead))
		return -ENODEV;

	switch (cmd) {
	case MOCK_ACCEL_IOC_STATUS:
		ret = mock_accel_reg_read(adev, MOCK_ACCEL_REG_STATUS, &status);
		if (ret)
			return ret;
		return put_user(status, (u32 __user *)argp) ? -EFAULT : 0;
	case MOCK_ACCEL_IOC_PASSPHRASE:
		/* drives the engine (and its lock): not for read-only opens */
		if (!(file->f_mode & FMODE_WRITE))
			return -EBADF;
		return mock_accel_ioctl_passphrase(adev, argp);
	case MOCK_ACCEL_IOC_INFO:
		ret = mock_accel_get_info(adev, &info);
		if (ret)
			return ret;
		return copy_to_user(argp, &info, sizeof(info)) ? -EFAULT : 0;
	default:
		return -ENOTTY;
	}
}

const struct file_operations mock_accel_fops = {
	.owner = THIS_MODULE,
	.open = mock_accel_open,
	.release = mock_accel_release,
	.read = mock_accel_read,
	.unlocked_ioctl = mock_accel_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};
