// SPDX-License-Identifier: GPL-2.0
/*
 * mock-accel: the virtual PCI host bridges of backend=pci, one PCI domain
 * per NUMA node whose config space the module emulates.
 *
 * Each bridge is a root bus (pci_create_root_bus() with our own pci_ops,
 * like the VMD and Hyper-V host drivers) on domain 0xacc0 + node, with an
 * MMIO window taken from the free physical address space above RAM.  Its
 * PFs (1de5:0001, header type 0, a 64-bit BAR0 of 4 KiB, a PCIe capability
 * of a root-complex integrated endpoint and an SR-IOV capability with VF
 * device id 0002) sit at bus 0, device j; the VFs of PF j at bus j + 1,
 * device/function M.  The PCI core probes, sizes, assigns and enables them
 * as real functions; only their registers are not behind the BAR: the
 * window is never mapped (x86 ioremap refuses RAM anyway), the PCI backend
 * reaches each function's register file through mock_accel_vpci_regfile().
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ioport.h>
#include <linux/kernel.h>
#include <linux/nodemask.h>
#include <linux/pci.h>
#include <linux/slab.h>

#include "mock_accel.h"

#define VPCI_DOMAIN		0xacc0
#define VPCI_MAX_PFS		32	/* devices of bus 0 */
#define VPCI_BAR_SIZE		SZ_4K
#define VPCI_PCIE_CAP		0x40
#define VPCI_SRIOV_CAP		0x100
#define VPCI_VF_CFG_SIZE	PCI_CFG_SPACE_SIZE
/* base class 0x12, processing accelerator (pci_ids.h has it from 6.2) */
#define VPCI_CLASS		0x120000

struct vpci_fn {
	u8 cfg[PCI_CFG_SPACE_EXP_SIZE];
	u8 wmask[PCI_CFG_SPACE_EXP_SIZE];
	struct mock_accel_regfile regs;
	int id;			/* the PF number it asks for */
	struct vpci_vf *vfs;	/* total_vfs of them */
	u16 total_vfs;
};

struct vpci_vf {
	u8 cfg[VPCI_VF_CFG_SIZE];
	struct mock_accel_regfile regs;
};

struct vpci_bridge {
	struct pci_sysdata sd;	/* first: the x86 PCI code reads bus->sysdata */
	struct pci_bus *bus;
	struct resource win;
	struct resource busn;
	char win_name[32];
	unsigned int nr_pfs;
	struct vpci_fn *pfs;
};

static struct vpci_bridge *vpci_bridges;
static unsigned int vpci_nr_bridges;

static void put8(u8 *cfg, unsigned int off, u8 val)
{
	cfg[off] = val;
}

/* config space is little endian */
static void put16(u8 *cfg, unsigned int off, u16 val)
{
	cfg[off] = val & 0xff;
	cfg[off + 1] = val >> 8;
}

static void put32(u8 *cfg, unsigned int off, u32 val)
{
	put16(cfg, off, val & 0xffff);
	put16(cfg, off + 2, val >> 16);
}

static u16 get16(const u8 *cfg, unsigned int off)
{
	return cfg[off] | (cfg[off + 1] << 8);
}

/* the common type 0 header of PFs and VFs */
static void vpci_header(u8 *cfg, u16 device)
{
	put16(cfg, PCI_VENDOR_ID, MOCK_ACCEL_PCI_VENDOR);
	put16(cfg, PCI_DEVICE_ID, device);
	put32(cfg, PCI_CLASS_REVISION,
	      VPCI_CLASS << 8 | 1);
	put8(cfg, PCI_HEADER_TYPE, PCI_HEADER_TYPE_NORMAL);
	put16(cfg, PCI_SUBSYSTEM_VENDOR_ID, MOCK_ACCEL_PCI_VENDOR);
	put16(cfg, PCI_SUBSYSTEM_ID, device);
}

static void vpci_pf_init(struct vpci_fn *fn, unsigned int slot)
{
	u8 *cfg = fn->cfg, *wm = fn->wmask;
	unsigned int sr = VPCI_SRIOV_CAP, pe = VPCI_PCIE_CAP;
	/* VF M of the PF at 00:slot.0 is at bus slot + 1, devfn M */
	u16 offset = ((slot + 1) << 8) - PCI_DEVFN(slot, 0);

	vpci_header(cfg, MOCK_ACCEL_PCI_PF);
	put16(wm, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
	      PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
	put16(cfg, PCI_STATUS, PCI_STATUS_CAP_LIST);
	/* BAR0: 64-bit memory, 4 KiB */
	put32(cfg, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_TYPE_64);
	put32(wm, PCI_BASE_ADDRESS_0, ~(u32)(VPCI_BAR_SIZE - 1));
	put32(wm, PCI_BASE_ADDRESS_1, ~0U);
	put8(wm, PCI_INTERRUPT_LINE, 0xff);
	put8(cfg, PCI_CAPABILITY_LIST, pe);

	/* PCIe v2, root-complex integrated endpoint: no link, no port above */
	put8(cfg, pe + PCI_CAP_LIST_ID, PCI_CAP_ID_EXP);
	put16(cfg, pe + PCI_EXP_FLAGS, 2 | (PCI_EXP_TYPE_RC_END << 4));
	put16(wm, pe + PCI_EXP_DEVCTL, 0xffff);
	put16(wm, pe + PCI_EXP_DEVCTL2, 0xffff);

	/* SR-IOV, the only extended capability */
	put32(cfg, sr, PCI_EXT_CAP_ID_SRIOV | (1 << 16));
	put16(wm, sr + PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_VFE |
	      PCI_SRIOV_CTRL_MSE);
	put16(cfg, sr + PCI_SRIOV_INITIAL_VF, fn->total_vfs);
	put16(cfg, sr + PCI_SRIOV_TOTAL_VF, fn->total_vfs);
	put16(wm, sr + PCI_SRIOV_NUM_VF, 0xffff);
	put16(cfg, sr + PCI_SRIOV_VF_OFFSET, offset);
	put16(cfg, sr + PCI_SRIOV_VF_STRIDE, 1);
	put16(cfg, sr + PCI_SRIOV_VF_DID, MOCK_ACCEL_PCI_VF);
	put32(cfg, sr + PCI_SRIOV_SUP_PGSIZE, 1);	/* 4 KiB */
	put32(cfg, sr + PCI_SRIOV_SYS_PGSIZE, 1);
	put32(wm, sr + PCI_SRIOV_SYS_PGSIZE, 1);
	/* VF BAR0: 64-bit memory, 4 KiB per VF */
	put32(cfg, sr + PCI_SRIOV_BAR, PCI_BASE_ADDRESS_MEM_TYPE_64);
	put32(wm, sr + PCI_SRIOV_BAR, ~(u32)(VPCI_BAR_SIZE - 1));
	put32(wm, sr + PCI_SRIOV_BAR + 4, ~0U);
}

static struct vpci_bridge *vpci_of(struct pci_bus *bus)
{
	return container_of(to_pci_sysdata(bus), struct vpci_bridge, sd);
}

/* the VF of @pf at @devfn of its bus, when SR-IOV has it enabled */
static struct vpci_vf *vpci_vf_at(struct vpci_fn *pf, unsigned int devfn)
{
	unsigned int sr = VPCI_SRIOV_CAP;

	if (!(get16(pf->cfg, sr + PCI_SRIOV_CTRL) & PCI_SRIOV_CTRL_VFE))
		return NULL;
	if (devfn >= get16(pf->cfg, sr + PCI_SRIOV_NUM_VF) ||
	    devfn >= pf->total_vfs)
		return NULL;
	return &pf->vfs[devfn];
}

/*
 * Config space of (bus, devfn): a PF's bytes and write mask, or a VF's
 * bytes (only its COMMAND register is writable).  Called under pci_lock.
 */
static u8 *vpci_cfg(struct pci_bus *bus, unsigned int devfn,
		    const u8 **wmask, unsigned int *size)
{
	struct vpci_bridge *br = vpci_of(bus);
	static const u8 vf_wmask[VPCI_VF_CFG_SIZE] = {
		[PCI_COMMAND] = PCI_COMMAND_MASTER,
		[PCI_COMMAND + 1] = (PCI_COMMAND_SERR |
				     PCI_COMMAND_INTX_DISABLE) >> 8,
	};
	struct vpci_vf *vf;
	unsigned int nr = bus->number;

	if (!nr) {
		if (PCI_FUNC(devfn) || PCI_SLOT(devfn) >= br->nr_pfs)
			return NULL;
		*wmask = br->pfs[PCI_SLOT(devfn)].wmask;
		*size = PCI_CFG_SPACE_EXP_SIZE;
		return br->pfs[PCI_SLOT(devfn)].cfg;
	}
	if (nr > br->nr_pfs)
		return NULL;
	vf = vpci_vf_at(&br->pfs[nr - 1], devfn);
	if (!vf)
		return NULL;
	*wmask = vf_wmask;
	*size = VPCI_VF_CFG_SIZE;
	return vf->cfg;
}

static int vpci_read(struct pci_bus *bus, unsigned int devfn, int where,
		     int size, u32 *val)
{
	const u8 *wmask;
	unsigned int len;
	u8 *cfg = vpci_cfg(bus, devfn, &wmask, &len);
	u32 v = 0;
	int i;

	if (!cfg) {
		*val = size == 4 ? ~0U : (1U << (8 * size)) - 1;
		return PCIBIOS_DEVICE_NOT_FOUND;
	}
	for (i = size - 1; i >= 0; i--)
		v = (v << 8) | (where + i < len ? cfg[where + i] : 0);
	*val = v;
	return PCIBIOS_SUCCESSFUL;
}

static int vpci_write(struct pci_bus *bus, unsigned int devfn, int where,
		      int size, u32 val)
{
	const u8 *wmask;
	unsigned int len;
	u8 *cfg = vpci_cfg(bus, devfn, &wmask, &len);
	int i;

	if (!cfg)
		return PCIBIOS_DEVICE_NOT_FOUND;
	for (i = 0; i < size && where + i < len; i++, val >>= 8)
		cfg[where + i] = (cfg[where + i] & ~wmask[where + i]) |
				 (val & wmask[where + i]);
	return PCIBIOS_SUCCESSFUL;
}

static struct pci_ops vpci_ops = {
	.read = vpci_read,
	.write = vpci_write,
};

/**
 * mock_accel_vpci_regfile - the register file of a function on our bridges
 * @pdev: a PCI function
 * @id: set to the PF number the function asks for (its index at load)
 *
 * Return: the register file standing for BAR0, or NULL when @pdev is not
 * on a virtual bridge of this module.
 */
struct mock_accel_regfile *mock_accel_vpci_regfile(struct pci_dev *pdev,
						   int *id)
{
	unsigned int nr = pdev->bus->number;
	struct vpci_bridge *br;
	struct vpci_fn *pf;

	if (pdev->bus->ops != &vpci_ops)
		return NULL;
	br = vpci_of(pdev->bus);
	if (!nr) {
		if (PCI_SLOT(pdev->devfn) >= br->nr_pfs)
			return NULL;
		pf = &br->pfs[PCI_SLOT(pdev->devfn)];
		*id = pf->id;
		return &pf->regs;
	}
	if (nr > br->nr_pfs || pdev->devfn >= br->pfs[nr - 1].total_vfs)
		return NULL;
	pf = &br->pfs[nr - 1];
	*id = pf->id;
	return &pf->vfs[pdev->devfn].regs;
}

static void vpci_bridge_free(struct vpci_bridge *br)
{
	unsigned int j;

	for (j = 0; br->pfs && j < br->nr_pfs; j++)
		kvfree(br->pfs[j].vfs);
	kvfree(br->pfs);
	br->pfs = NULL;
}

/* the functions of bridge @node: PFs node, node + nodes, ... */
static int vpci_bridge_fill(struct vpci_bridge *br, unsigned int node,
			    const struct mock_accel_layout *lay)
{
	unsigned int j, m;

	br->nr_pfs = DIV_ROUND_UP(lay->num_devices - node, lay->numa_nodes);
	br->pfs = kvcalloc(br->nr_pfs, sizeof(*br->pfs), GFP_KERNEL);
	if (!br->pfs)
		return -ENOMEM;
	for (j = 0; j < br->nr_pfs; j++) {
		struct vpci_fn *fn = &br->pfs[j];

		fn->id = node + j * lay->numa_nodes;
		fn->total_vfs = lay->total_vfs;
		vpci_pf_init(fn, j);
		mock_accel_soft_regfile_init(&fn->regs, fn->id, -1,
					     lay->memory_size);
		if (!fn->total_vfs)
			continue;
		fn->vfs = kvcalloc(fn->total_vfs, sizeof(*fn->vfs),
				   GFP_KERNEL);
		if (!fn->vfs)
			return -ENOMEM;
		for (m = 0; m < fn->total_vfs; m++) {
			vpci_header(fn->vfs[m].cfg, MOCK_ACCEL_PCI_VF);
			/* per the SR-IOV spec a VF's vendor/device read ~0 */
			put32(fn->vfs[m].cfg, PCI_VENDOR_ID, ~0U);
			mock_accel_soft_regfile_init(&fn->vfs[m].regs, fn->id,
						     m, div_u64(lay->memory_size,
								fn->total_vfs));
		}
	}
	return 0;
}

/* an MMIO window for every BAR of the bridge, in free address space */
static int vpci_bridge_window(struct vpci_bridge *br,
			      const struct mock_accel_layout *lay)
{
	resource_size_t size = (resource_size_t)br->nr_pfs *
			       (1 + lay->total_vfs) * VPCI_BAR_SIZE;

	size = roundup_pow_of_two(max_t(resource_size_t, size, SZ_1M));
	snprintf(br->win_name, sizeof(br->win_name), "mock-accel pci%04x",
		 br->sd.domain);
	br->win.name = br->win_name;
	br->win.flags = IORESOURCE_MEM;
	/* the upper half of the physical address space: above RAM */
	return allocate_resource(&iomem_resource, &br->win, size,
				 iomem_resource.end / 2 + 1,
				 iomem_resource.end, size, NULL, NULL);
}

static int vpci_bridge_add(struct vpci_bridge *br, unsigned int node,
			   const struct mock_accel_layout *lay)
{
	LIST_HEAD(resources);
	struct pci_bus *bus;
	int ret;

	br->sd.domain = VPCI_DOMAIN + node;
	br->sd.node = node_online(node) ? node : NUMA_NO_NODE;
	if (pci_find_bus(br->sd.domain, 0)) {
		pr_err("PCI domain %04x is taken; no virtual bridge for node %u\n",
		       br->sd.domain, node);
		return -EBUSY;
	}
	ret = vpci_bridge_fill(br, node, lay);
	if (ret)
		return ret;
	ret = vpci_bridge_window(br, lay);
	if (ret) {
		pr_err("no free address space for the window of pci%04x (%d)\n",
		       br->sd.domain, ret);
		return ret;
	}
	br->busn.name = "mock-accel bus";
	br->busn.start = 0;
	br->busn.end = br->nr_pfs;
	br->busn.flags = IORESOURCE_BUS;
	pci_add_resource(&resources, &br->busn);
	pci_add_resource(&resources, &br->win);

	pci_lock_rescan_remove();
	bus = pci_create_root_bus(NULL, 0, &vpci_ops, &br->sd, &resources);
	if (!bus) {
		pci_unlock_rescan_remove();
		pci_free_resource_list(&resources);
		release_resource(&br->win);
		return -ENOMEM;
	}
	br->bus = bus;
	pci_scan_child_bus(bus);
	pci_assign_unassigned_bus_resources(bus);
	pci_bus_add_devices(bus);
	pci_unlock_rescan_remove();
	return 0;
}

static void vpci_bridge_remove(struct vpci_bridge *br)
{
	if (br->bus) {
		pci_lock_rescan_remove();
		pci_stop_root_bus(br->bus);
		pci_remove_root_bus(br->bus);
		pci_unlock_rescan_remove();
		br->bus = NULL;
		release_resource(&br->win);
	}
	vpci_bridge_free(br);
}

/* num_vfs at load: as a write to each PF's sriov_numvfs */
static int vpci_bridge_enable_vfs(struct vpci_bridge *br, unsigned int num)
{
	struct pci_dev *pdev;
	unsigned int j;
	int ret = 0;

	for (j = 0; j < br->nr_pfs && !ret; j++) {
		pdev = pci_get_slot(br->bus, PCI_DEVFN(j, 0));
		if (pdev)
			ret = mock_accel_pci_enable_vfs(pdev, num);
		pci_dev_put(pdev);
	}
	return ret;
}

/**
 * mock_accel_vpci_init - one virtual host bridge per NUMA node
 * @lay: the software layout of the module parameters
 *
 * Called after the PCI driver is registered: it binds the PFs as they are
 * added.
 */
int mock_accel_vpci_init(const struct mock_accel_layout *lay)
{
	unsigned int node;
	int ret = 0;

	if (DIV_ROUND_UP(lay->num_devices, lay->numa_nodes) > VPCI_MAX_PFS) {
		pr_err("backend=pci: at most %d PFs per NUMA node (num_devices %u, numa_nodes %u)\n",
		       VPCI_MAX_PFS, lay->num_devices, lay->numa_nodes);
		return -EINVAL;
	}
	vpci_nr_bridges = min(lay->num_devices, lay->numa_nodes);
	if (!vpci_nr_bridges)
		return 0;
	vpci_bridges = kcalloc(vpci_nr_bridges, sizeof(*vpci_bridges),
			       GFP_KERNEL);
	if (!vpci_bridges)
		return -ENOMEM;
	for (node = 0; node < vpci_nr_bridges && !ret; node++)
		ret = vpci_bridge_add(&vpci_bridges[node], node, lay);
	for (node = 0; node < vpci_nr_bridges && !ret && lay->num_vfs; node++)
		ret = vpci_bridge_enable_vfs(&vpci_bridges[node], lay->num_vfs);
	if (ret)
		mock_accel_vpci_exit();
	return ret;
}

void mock_accel_vpci_exit(void)
{
	unsigned int i;

	for (i = vpci_nr_bridges; i-- > 0;)
		vpci_bridge_remove(&vpci_bridges[i]);
	kfree(vpci_bridges);
	vpci_bridges = NULL;
	vpci_nr_bridges = 0;
}
