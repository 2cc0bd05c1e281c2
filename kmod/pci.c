// SPDX-License-Identifier: GPL-2.0
/*
 * mock-accel: the PCI backend.
 *
 * Binds 1de5:0001 (PF) and 1de5:0002 (VF) when BAR0 reads "MOCK" at
 * offset 0.  The registers are BAR0; SR-IOV goes through the PCI core.
 * A PF takes the lowest free number N (shared with software devices); its
 * VFs are mock<N>-vf<M>, M being the VF's index on the PF.  A function on
 * the module's own virtual host bridges (vpci.c) has no BAR to map: its
 * registers are the register file vpci.c keeps for it, and it asks for the
 * PF number it was made with.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>

#include "compat.h"
#include "mock_accel.h"

struct mock_accel_pci {
	struct pci_dev *pdev;
	void __iomem *bar;
	struct mock_accel_regfile *rf;	/* virtual bridge: instead of @bar */
	bool fault;		/* injected fault, shown as STATUS.ERROR */
};

static struct pci_driver mock_accel_pci_driver;

static struct mock_accel_pci *to_mpci(struct mock_accel_dev *adev)
{
	return adev->priv;
}

static u32 mpci_read32_raw(struct mock_accel_pci *mp, unsigned int off)
{
	if (mp->rf)
		return mock_accel_regfile_read32(mp->rf, off);
	return ioread32(mp->bar + off);
}

static u32 mpci_read32(struct mock_accel_dev *adev, unsigned int off)
{
	struct mock_accel_pci *mp = to_mpci(adev);
	u32 val = mpci_read32_raw(mp, off);

	if (mp->rf)
		return val;
	if (off == MOCK_ACCEL_REG_STATUS && mp->fault)
		val |= MOCK_ACCEL_STATUS_ERROR;
	return val;
}

static void mpci_write32(struct mock_accel_dev *adev, unsigned int off,
			 u32 val)
{
	struct mock_accel_pci *mp = to_mpci(adev);

	if (mp->rf)
		mock_accel_regfile_write32(mp->rf, off, val);
	else
		iowrite32(val, mp->bar + off);
}

/*
 * The register map has no fault input: keep it in the driver, or, on a
 * virtual bridge, in the register file as software devices do.
 */
static void mpci_set_fault(struct mock_accel_dev *adev, bool fail)
{
	struct mock_accel_pci *mp = to_mpci(adev);

	if (mp->rf)
		mock_accel_regfile_set_fault(mp->rf, fail);
	else
		mp->fault = fail;
}

static unsigned int mpci_sriov_numvfs(struct mock_accel_dev *adev)
{
	return pci_num_vf(to_mpci(adev)->pdev);
}

static int mpci_sriov_configure(struct mock_accel_dev *pf, unsigned int num)
{
	struct pci_dev *pdev = to_mpci(pf)->pdev;

	if (!num) {
		pci_disable_sriov(pdev);
		return 0;
	}
	return pci_enable_sriov(pdev, num);
}

static void mpci_release(struct mock_accel_dev *adev)
{
	kfree(adev->priv);
}

static const struct mock_accel_backend mock_accel_pci_ops = {
	.read32 = mpci_read32,
	.write32 = mpci_write32,
	.set_fault = mpci_set_fault,
	.sriov_numvfs = mpci_sriov_numvfs,
	.sriov_configure = mpci_sriov_configure,
	.release = mpci_release,
};

/* VF index from the PF's SR-IOV capability (offset and stride) */
static int mock_accel_pci_vf_index(struct pci_dev *vf)
{
	struct pci_dev *pf = pci_physfn(vf);
	u16 offset, stride;
	int pos, rid;

	pos = pci_find_ext_capability(pf, PCI_EXT_CAP_ID_SRIOV);
	if (!pos)
		return -ENODEV;
	pci_read_config_word(pf, pos + PCI_SRIOV_VF_OFFSET, &offset);
	pci_read_config_word(pf, pos + PCI_SRIOV_VF_STRIDE, &stride);
	rid = ((vf->bus->number << 8) | vf->devfn) -
	      ((pf->bus->number << 8) | pf->devfn) - offset;
	if (rid < 0)
		return -ENODEV;
	if (!stride)
		return rid ? -ENODEV : 0;
	if (rid % stride)
		return -ENODEV;
	return rid / stride;
}

/*
 * The mock device of the PF of @vf, with a reference.  A PF's drvdata is
 * published (under mock_accel_lock) only once its device is registered, so
 * a PF bound to us without drvdata is still probing: -EPROBE_DEFER, and the
 * driver core probes the VF again after it.  -ENODEV when the PF is not ours.
 */
static struct mock_accel_dev *mock_accel_pci_get_pf(struct pci_dev *vf)
{
	struct pci_dev *pf = pci_physfn(vf);
	struct mock_accel_dev *adev = ERR_PTR(-ENODEV);

	mutex_lock(&mock_accel_lock);
	if (pf != vf && pf->driver == &mock_accel_pci_driver) {
		adev = pci_get_drvdata(pf);
		if (adev)
			mock_accel_dev_get(adev);
		else
			adev = ERR_PTR(-EPROBE_DEFER);
	}
	mutex_unlock(&mock_accel_lock);
	return adev;
}

static void mock_accel_pci_root(struct pci_dev *pdev, char *buf, size_t size)
{
	struct pci_bus *bus = pdev->bus;

	while (bus->parent)
		bus = bus->parent;
	snprintf(buf, size, "pci%04x:%02x", pci_domain_nr(bus), bus->number);
}

static int mock_accel_pci_probe(struct pci_dev *pdev,
				const struct pci_device_id *ent)
{
	struct mock_accel_dev *adev, *pf = NULL;
	struct mock_accel_pci *mp;
	int ret, id = -1, vf = -1, want = -1;
	u32 devid;

	/* managed: disabled, released and unmapped when the driver unbinds */
	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	if (!(pci_resource_flags(pdev, 0) & IORESOURCE_MEM) ||
	    pci_resource_len(pdev, 0) < MOCK_ACCEL_BAR_SIZE) {
		pci_err(pdev, "BAR0 is missing or smaller than %#x bytes; not binding\n",
			MOCK_ACCEL_BAR_SIZE);
		return -ENODEV;
	}
	ret = mock_accel_pcim_request_region(pdev, 0, MOCK_ACCEL_NAME);
	if (ret)
		return ret;

	mp = kzalloc(sizeof(*mp), GFP_KERNEL);
	if (!mp)
		return -ENOMEM;
	mp->pdev = pdev;
	mp->rf = mock_accel_vpci_regfile(pdev, &want);
	if (!mp->rf) {
		mp->bar = pcim_iomap(pdev, 0, MOCK_ACCEL_BAR_SIZE);
		if (!mp->bar) {
			ret = -ENOMEM;
			goto err_free;
		}
	}

	devid = mpci_read32_raw(mp, MOCK_ACCEL_REG_DEVICE_ID);
	if (devid != MOCK_ACCEL_DEVICE_ID) {
		pci_err(pdev, "BAR0 DEVICE_ID reads %#010x, not %#010x (\"MOCK\"); refusing to bind\n",
			devid, MOCK_ACCEL_DEVICE_ID);
		ret = -ENODEV;
		goto err_free;
	}

	if (pdev->is_virtfn) {
		pf = mock_accel_pci_get_pf(pdev);
		if (IS_ERR(pf)) {
			/* quiet for -EPROBE_DEFER: the PF is still probing */
			ret = dev_err_probe(&pdev->dev, PTR_ERR(pf),
					    "its PF is not bound to %s; refusing to bind\n",
					    MOCK_ACCEL_NAME);
			goto err_free;
		}
		vf = mock_accel_pci_vf_index(pdev);
		if (vf < 0 || vf >= MOCK_ACCEL_MAX_VFS) {
			pci_err(pdev, "cannot tell its VF index; refusing to bind\n");
			mock_accel_dev_put(pf);
			ret = -ENODEV;
			goto err_free;
		}
		id = pf->id;
	} else {
		/* a virtual PF asks for its number; any other takes the lowest */
		id = want >= 0 ? mock_accel_id_alloc(want) : -EEXIST;
		if (id == -EEXIST)
			id = mock_accel_id_alloc(-1);
		if (id < 0) {
			ret = id;
			goto err_free;
		}
	}

	adev = mock_accel_dev_alloc(&mock_accel_pci_ops, mp);
	if (!adev) {
		mock_accel_dev_put(pf);
		ret = -ENOMEM;
		goto err_id;
	}
	/* from here on adev owns mp and the reference on pf */
	adev->parent = &pdev->dev;
	adev->id = id;
	adev->vf = vf;
	adev->numa_node = dev_to_node(&pdev->dev);
	strscpy(adev->pci_address, pci_name(pdev), sizeof(adev->pci_address));
	mock_accel_pci_root(pdev, adev->pcie_root, sizeof(adev->pcie_root));
	if (pf) {
		adev->pf = pf;
		strscpy(adev->physfn, pf->name, sizeof(adev->physfn));
	} else {
		ret = pci_sriov_get_totalvfs(pdev);
		adev->total_vfs = clamp(ret, 0, MOCK_ACCEL_MAX_VFS);
	}
	mock_accel_dev_set_name(adev);

	ret = mock_accel_dev_register(adev);
	if (ret) {
		mock_accel_dev_put(adev);	/* frees mp, drops pf */
		if (!pf)
			mock_accel_id_free(id);
		return ret;
	}
	/*
	 * Published only now, under the lock mock_accel_pci_get_pf() reads it
	 * with: a VF never takes a PF whose registration may still fail.  The
	 * PCI core's callbacks (remove, sriov_configure) run under the device
	 * lock, after the probe.
	 */
	mutex_lock(&mock_accel_lock);
	pci_set_drvdata(pdev, adev);
	mutex_unlock(&mock_accel_lock);
	pci_info(pdev, "%s bound\n", adev->name);
	return 0;

err_id:
	if (!pf)
		mock_accel_id_free(id);
err_free:
	kfree(mp);
	return ret;
}

static void mock_accel_pci_remove(struct pci_dev *pdev)
{
	struct mock_accel_dev *adev = pci_get_drvdata(pdev);
	bool is_pf = !mock_accel_is_vf(adev);
	int id = adev->id;

	/* sysfs is drained and the device dead after this */
	mock_accel_dev_unregister(adev);
	if (is_pf) {
		mutex_lock(&adev->sriov_lock);
		pci_disable_sriov(pdev);
		mutex_unlock(&adev->sriov_lock);
	}
	mutex_lock(&mock_accel_lock);
	pci_set_drvdata(pdev, NULL);
	mutex_unlock(&mock_accel_lock);
	/* BAR0's mapping and region and the enable go with the binding */
	mock_accel_dev_put(adev);
	if (is_pf)
		mock_accel_id_free(id);
}

static int mock_accel_pci_set_vfs(struct pci_dev *pdev, int num_vfs)
{
	struct mock_accel_dev *adev = pci_get_drvdata(pdev);
	int ret;

	if (!adev || mock_accel_is_vf(adev) || num_vfs < 0)
		return -EINVAL;
	ret = mock_accel_sriov_set(adev, num_vfs);
	return ret ? ret : num_vfs;
}

/*
 * The PCI core's sriov_numvfs (root-owned 0644, no capability check of its
 * own) calls this in the writer's context: same rule as the class device's
 * sriov_numvfs, CAP_SYS_ADMIN.  Ours goes through mock_accel_sriov_set().
 */
static int mock_accel_pci_sriov_configure(struct pci_dev *pdev, int num_vfs)
{
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	return mock_accel_pci_set_vfs(pdev, num_vfs);
}

/**
 * mock_accel_pci_enable_vfs - num_vfs at load, as a write to sriov_numvfs
 * @pdev: a PF
 * @num_vfs: VFs to enable
 *
 * Return: 0 (nothing to do when @pdev is not bound to us), or an error.
 */
int mock_accel_pci_enable_vfs(struct pci_dev *pdev, unsigned int num_vfs)
{
	int ret = 0;

	device_lock(&pdev->dev);
	if (pdev->driver == &mock_accel_pci_driver)
		ret = mock_accel_pci_set_vfs(pdev, num_vfs);
	device_unlock(&pdev->dev);
	return ret < 0 ? ret : 0;
}

static const struct pci_device_id mock_accel_pci_ids[] = {
	{ PCI_DEVICE(MOCK_ACCEL_PCI_VENDOR, MOCK_ACCEL_PCI_PF) },
	{ PCI_DEVICE(MOCK_ACCEL_PCI_VENDOR, MOCK_ACCEL_PCI_VF) },
	{ }
};
MODULE_DEVICE_TABLE(pci, mock_accel_pci_ids);

static struct pci_driver mock_accel_pci_driver = {
	.name = MOCK_ACCEL_NAME,
	.id_table = mock_accel_pci_ids,
	.probe = mock_accel_pci_probe,
	.remove = mock_accel_pci_remove,
	.sriov_configure = mock_accel_pci_sriov_configure,
};

int mock_accel_pci_init(void)
{
	return pci_register_driver(&mock_accel_pci_driver);
}

void mock_accel_pci_exit(void)
{
	pci_unregister_driver(&mock_accel_pci_driver);
}
