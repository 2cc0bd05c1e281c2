// SPDX-License-Identifier: GPL-2.0
/*
 * mock-accel: the software backend.
 *
 * Software functions sit on the "mock-accel" bus, named after their made-up
 * PCI address (/sys/bus/mock-accel/devices/acc0:00:00.0), each with an
 * in-memory register file that behaves like BAR0.  PFs come from module
 * parameters at load time and from the bus's new_device / del_device
 * control files at run time; VFs from a PF's sriov_numvfs.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/device.h>
#include <linux/dmi.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/nodemask.h>
#include <linux/pci.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uuid.h>

#include "compat.h"
#include "mock_accel.h"

static unsigned int num_devices = 4;
module_param(num_devices, uint, 0444);
MODULE_PARM_DESC(num_devices, "software PFs created at load (0: PCI only)");

static unsigned int numa_nodes = 2;
module_param(numa_nodes, uint, 0444);
MODULE_PARM_DESC(numa_nodes, "NUMA spread of the software PFs made at load (1..64)");

static unsigned long memory_size = 16UL << 30;
module_param(memory_size, ulong, 0444);
MODULE_PARM_DESC(memory_size, "bytes per software PF (default 16 GiB)");

static unsigned int total_vfs = 4;
module_param(total_vfs, uint, 0444);
MODULE_PARM_DESC(total_vfs, "sriov_totalvfs of each software PF (0..64)");

static unsigned int num_vfs;
module_param(num_vfs, uint, 0444);
MODULE_PARM_DESC(num_vfs, "VFs enabled on each software PF at load (<= total_vfs)");

/* 0 at load: derived by soft_default_seed(); reads back the seed in use */
static unsigned long uuid_seed;
module_param(uuid_seed, ulong, 0444);
MODULE_PARM_DESC(uuid_seed, "mixed into software UUIDs so hosts differ (0: from the DMI product UUID, else random at load; reads back the seed in use)");

static char *backend = "soft";
module_param(backend, charp, 0444);
MODULE_PARM_DESC(backend, "where the devices of the parameters live: soft (the mock-accel bus) or pci (virtual PCI host bridges, x86)");

#define MOCK_ACCEL_SOFT_DOMAIN		0xacc0
#define MOCK_ACCEL_SOFT_NEW_DEVICE_MAX	128

struct mock_accel_soft {
	struct device bdev;	/* on the mock-accel bus */
	struct mock_accel_regfile regs;
	struct mock_accel_dev *adev;
	u64 memory_size;
	/* PF only */
	struct list_head node;	/* mock_accel_soft_pfs */
	struct mock_accel_dev *vfs[MOCK_ACCEL_MAX_VFS];	/* adev->sriov_lock */
	unsigned int num_vfs;
};

/* serializes new_device, del_device and load/unload; protects the list */
static DEFINE_MUTEX(mock_accel_soft_lock);
static LIST_HEAD(mock_accel_soft_pfs);

static struct mock_accel_soft *to_soft(struct mock_accel_dev *adev)
{
	return adev->priv;
}

static u32 soft_read32(struct mock_accel_dev *adev, unsigned int off)
{
	return mock_accel_regfile_read32(&to_soft(adev)->regs, off);
}

static void soft_write32(struct mock_accel_dev *adev, unsigned int off,
			 u32 val)
{
	mock_accel_regfile_write32(&to_soft(adev)->regs, off, val);
}

static void soft_set_fault(struct mock_accel_dev *adev, bool fail)
{
	mock_accel_regfile_set_fault(&to_soft(adev)->regs, fail);
}

static unsigned int soft_sriov_numvfs(struct mock_accel_dev *adev)
{
	return READ_ONCE(to_soft(adev)->num_vfs);
}

static int soft_sriov_configure(struct mock_accel_dev *pf,
				unsigned int num);

static void soft_release(struct mock_accel_dev *adev)
{
	put_device(&to_soft(adev)->bdev);
}

static const struct mock_accel_backend mock_accel_soft_ops = {
	.read32 = soft_read32,
	.write32 = soft_write32,
	.set_fault = soft_set_fault,
	.sriov_numvfs = soft_sriov_numvfs,
	.sriov_configure = soft_sriov_configure,
	.release = soft_release,
};

static struct bus_type mock_accel_bus;

static void soft_bdev_release(struct device *dev)
{
	kfree(container_of(dev, struct mock_accel_soft, bdev));
}

/* DMI product UUIDs of firmware that left the field at a vendor default */
static const char * const soft_placeholder_uuids[] = {
	"03000200-0400-0500-0006-000700080009",
};

static bool soft_placeholder_uuid(const char *text)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(soft_placeholder_uuids); i++)
		if (!strcasecmp(text, soft_placeholder_uuids[i]))
			return true;
	return false;
}

/*
 * The seed when uuid_seed is 0 at load: the DMI product UUID as printed in
 * /sys/class/dmi/id/product_uuid, its two big-endian 64-bit halves XORed,
 * so hosts differ and a host keeps its UUIDs across reloads; random (new
 * at every load) when the firmware gives none (the kernel drops all-zero
 * and all-0xff UUIDs) or a placeholder.  Never 0.
 */
static u64 soft_default_seed(const char **source)
{
	const char *dmi = dmi_get_system_info(DMI_PRODUCT_UUID);
	__be64 half[2];
	u64 seed = 0;
	uuid_t id;

	if (dmi && !uuid_parse(dmi, &id) && !soft_placeholder_uuid(dmi)) {
		memcpy(half, id.b, sizeof(half));
		seed = be64_to_cpu(half[0]) ^ be64_to_cpu(half[1]);
		*source = "from the DMI product UUID";
	}
	while (!seed) {
		get_random_bytes(&seed, sizeof(seed));
		*source = "random: no DMI product UUID";
	}
	return seed;
}

/* "MOCK", PF id, 0x4000 | function, 0x8000 | seed[61:48], seed[47:0] */
static void soft_uuid(u8 uuid[16], unsigned int id, int vf)
{
	u64 seed = uuid_seed;
	u16 fn = 0x4000 | (vf < 0 ? 0 : vf + 1);
	u16 var = 0x8000 | ((seed >> 48) & 0x3fff);
	unsigned int i;

	uuid[0] = 'M';
	uuid[1] = 'O';
	uuid[2] = 'C';
	uuid[3] = 'K';
	uuid[4] = id >> 8;
	uuid[5] = id & 0xff;
	uuid[6] = fn >> 8;
	uuid[7] = fn & 0xff;
	uuid[8] = var >> 8;
	uuid[9] = var & 0xff;
	for (i = 0; i < 6; i++)
		uuid[10 + i] = (seed >> (40 - 8 * i)) & 0xff;
}

/**
 * mock_accel_soft_regfile_init - the register file of function (@id, @vf)
 * @rf: register file
 * @id: PF number
 * @vf: VF index, -1 for the PF
 * @mem: memory size
 *
 * The identity a software function gets, whichever bus it is on.
 */
void mock_accel_soft_regfile_init(struct mock_accel_regfile *rf,
				  unsigned int id, int vf, u64 mem)
{
	u8 uuid[16];

	soft_uuid(uuid, id, vf);
	mock_accel_regfile_init(rf, uuid, mem,
				vf < 0 ? MOCK_ACCEL_CAP_PASSPHRASE |
					 MOCK_ACCEL_CAP_SRIOV :
					 MOCK_ACCEL_CAP_PASSPHRASE);
}

bool mock_accel_backend_is_pci(void)
{
	return !strcmp(backend, "pci");
}

void mock_accel_soft_layout(struct mock_accel_layout *lay)
{
	lay->num_devices = num_devices;
	lay->numa_nodes = numa_nodes;
	lay->memory_size = memory_size;
	lay->total_vfs = total_vfs;
	lay->num_vfs = num_vfs;
}

/* create one function: its bus device, register file and mock device */
static struct mock_accel_dev *soft_fn_create(unsigned int id, int vf,
					     int node, u64 mem, u16 tvfs,
					     struct mock_accel_dev *pf)
{
	unsigned int domain = MOCK_ACCEL_SOFT_DOMAIN + max(node, 0);
	unsigned int devfn = vf < 0 ? 0 : vf + 1;
	struct mock_accel_soft *sf;
	struct mock_accel_dev *adev;
	int ret;

	sf = kzalloc(sizeof(*sf), GFP_KERNEL);
	if (!sf)
		return ERR_PTR(-ENOMEM);
	mock_accel_soft_regfile_init(&sf->regs, id, vf, mem);
	sf->memory_size = mem;
	INIT_LIST_HEAD(&sf->node);

	device_initialize(&sf->bdev);
	sf->bdev.bus = &mock_accel_bus;
	sf->bdev.parent = mock_accel_root;
	sf->bdev.release = soft_bdev_release;
	if (node >= 0 && node < MAX_NUMNODES && node_online(node))
		set_dev_node(&sf->bdev, node);
	ret = dev_set_name(&sf->bdev, "%04x:%02x:%02x.%x", domain, id,
			   PCI_SLOT(devfn), PCI_FUNC(devfn));
	if (ret)
		goto err_put;
	ret = device_add(&sf->bdev);
	if (ret)
		goto err_put;

	adev = mock_accel_dev_alloc(&mock_accel_soft_ops, sf);
	if (!adev) {
		ret = -ENOMEM;
		goto err_del;
	}
	get_device(&sf->bdev);	/* dropped by soft_release() */
	sf->adev = adev;
	adev->parent = &sf->bdev;
	adev->id = id;
	adev->vf = vf;
	adev->numa_node = node;
	strscpy(adev->pci_address, dev_name(&sf->bdev),
		sizeof(adev->pci_address));
	snprintf(adev->pcie_root, sizeof(adev->pcie_root), "pci%04x:00",
		 domain);
	if (pf) {
		mock_accel_dev_get(pf);
		adev->pf = pf;
		strscpy(adev->physfn, pf->name, sizeof(adev->physfn));
	} else {
		adev->total_vfs = tvfs;
	}
	mock_accel_dev_set_name(adev);

	ret = mock_accel_dev_register(adev);
	if (ret) {
		mock_accel_dev_put(adev);
		goto err_del;
	}
	return adev;

err_del:
	device_del(&sf->bdev);
err_put:
	put_device(&sf->bdev);
	return ERR_PTR(ret);
}

static void soft_fn_destroy(struct mock_accel_dev *adev)
{
	struct mock_accel_soft *sf = to_soft(adev);

	mock_accel_dev_unregister(adev);
	device_del(&sf->bdev);
	put_device(&sf->bdev);
	mock_accel_dev_put(adev);
}

static void soft_vfs_destroy(struct mock_accel_dev *pf)
{
	struct mock_accel_soft *sf = to_soft(pf);

	while (sf->num_vfs) {
		unsigned int i = sf->num_vfs - 1;

		soft_fn_destroy(sf->vfs[i]);
		sf->vfs[i] = NULL;
		WRITE_ONCE(sf->num_vfs, i);
	}
}

/* called with pf->sriov_lock held, from 0 to @num or from any to 0 */
static int soft_sriov_configure(struct mock_accel_dev *pf, unsigned int num)
{
	struct mock_accel_soft *sf = to_soft(pf);
	struct mock_accel_dev *vf;
	unsigned int i;
	u64 mem;

	lockdep_assert_held(&pf->sriov_lock);
	if (!num) {
		soft_vfs_destroy(pf);
		return 0;
	}
	if (sf->num_vfs || num > pf->total_vfs)
		return -EBUSY;

	mem = div_u64(sf->memory_size, pf->total_vfs);
	for (i = 0; i < num; i++) {
		vf = soft_fn_create(pf->id, i, pf->numa_node, mem, 0, pf);
		if (IS_ERR(vf)) {
			soft_vfs_destroy(pf);
			return PTR_ERR(vf);
		}
		sf->vfs[i] = vf;
		WRITE_ONCE(sf->num_vfs, i + 1);
	}
	return 0;
}

/* create PF @id and add it to the list; mock_accel_soft_lock held */
static int soft_pf_create(unsigned int id, int node, u64 mem, u16 tvfs,
			  struct mock_accel_dev **out)
{
	struct mock_accel_dev *adev;
	int ret;

	lockdep_assert_held(&mock_accel_soft_lock);
	ret = mock_accel_id_alloc(id);
	if (ret < 0)
		return ret;
	adev = soft_fn_create(id, -1, node, mem, tvfs, NULL);
	if (IS_ERR(adev)) {
		mock_accel_id_free(id);
		return PTR_ERR(adev);
	}
	list_add_tail(&to_soft(adev)->node, &mock_accel_soft_pfs);
	if (out)
		*out = adev;
	return 0;
}

/* remove a PF and its VFs; mock_accel_soft_lock held */
static void soft_pf_destroy(struct mock_accel_dev *pf)
{
	struct mock_accel_soft *sf = to_soft(pf);
	int id = pf->id;

	lockdep_assert_held(&mock_accel_soft_lock);
	list_del_init(&sf->node);
	/* no sriov_numvfs store runs or starts after this */
	mock_accel_dev_unregister(pf);
	mutex_lock(&pf->sriov_lock);
	soft_vfs_destroy(pf);
	mutex_unlock(&pf->sriov_lock);
	device_del(&sf->bdev);
	put_device(&sf->bdev);
	mock_accel_dev_put(pf);
	mock_accel_id_free(id);
}

static void soft_destroy_all(void)
{
	struct mock_accel_soft *sf, *tmp;

	mutex_lock(&mock_accel_soft_lock);
	list_for_each_entry_safe_reverse(sf, tmp, &mock_accel_soft_pfs, node)
		soft_pf_destroy(sf->adev);
	mutex_unlock(&mock_accel_soft_lock);
}

/* "ID [NUMA_NODE [MEMORY_SIZE [TOTAL_VFS]]]" */
static ssize_t new_device_store(MOCK_ACCEL_BUS_CONST struct bus_type *bus,
				const char *buf, size_t count)
{
	char tmp[MOCK_ACCEL_SOFT_NEW_DEVICE_MAX];
	char *p = tmp, *tok;
	unsigned int id = 0, tvfs = total_vfs, nfields = 0;
	int node = 0;
	u64 mem = memory_size;
	size_t len = count;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (len && buf[len - 1] == '\n')
		len--;
	if (!len || len >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, buf, len);
	tmp[len] = '\0';

	while ((tok = strsep(&p, " "))) {
		if (!*tok)
			return -EINVAL;	/* fields are separated by one space */
		switch (nfields++) {
		case 0:
			if (kstrtouint(tok, 10, &id) ||
			    id >= MOCK_ACCEL_MAX_PFS)
				return -EINVAL;
			break;
		case 1:
			if (kstrtoint(tok, 10, &node) || node < -1 ||
			    node >= MOCK_ACCEL_MAX_NUMA_NODES)
				return -EINVAL;
			break;
		case 2:
			if (kstrtou64(tok, 10, &mem) || !mem)
				return -EINVAL;
			break;
		case 3:
			if (kstrtouint(tok, 10, &tvfs) ||
			    tvfs > MOCK_ACCEL_MAX_VFS)
				return -EINVAL;
			break;
		default:
			return -EINVAL;
		}
	}
	if (!nfields)
		return -EINVAL;
	if (nfields < 2)
		node = id % numa_nodes;

	mutex_lock(&mock_accel_soft_lock);
	ret = soft_pf_create(id, node, mem, tvfs, NULL);
	mutex_unlock(&mock_accel_soft_lock);
	return ret ? ret : count;
}
static BUS_ATTR_WO(new_device);

static ssize_t del_device_store(MOCK_ACCEL_BUS_CONST struct bus_type *bus,
				const char *buf, size_t count)
{
	struct mock_accel_soft *sf;
	unsigned int id;
	int ret = -ENODEV;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (kstrtouint(buf, 10, &id))
		return -EINVAL;

	mutex_lock(&mock_accel_soft_lock);
	list_for_each_entry(sf, &mock_accel_soft_pfs, node) {
		if (sf->adev->id == id) {
			soft_pf_destroy(sf->adev);
			ret = 0;
			break;
		}
	}
	mutex_unlock(&mock_accel_soft_lock);
	return ret ? ret : count;
}
static BUS_ATTR_WO(del_device);

static struct attribute *mock_accel_bus_attrs[] = {
	&bus_attr_new_device.attr,
	&bus_attr_del_device.attr,
	NULL
};
ATTRIBUTE_GROUPS(mock_accel_bus);

/*
 * The NUMA node of the device model, as PCI shows it for a real function:
 * the configured node when it is online, -1 otherwise.
 */
static ssize_t numa_node_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", dev_to_node(dev));
}
static DEVICE_ATTR_RO(numa_node);

static struct attribute *mock_accel_bus_dev_attrs[] = {
	&dev_attr_numa_node.attr,
	NULL
};
ATTRIBUTE_GROUPS(mock_accel_bus_dev);

static struct bus_type mock_accel_bus = {
	.name = MOCK_ACCEL_NAME,
	.bus_groups = mock_accel_bus_groups,
	.dev_groups = mock_accel_bus_dev_groups,
};

int mock_accel_soft_check_params(void)
{
	if (!memory_size) {
		pr_err("invalid memory_size 0 (must be > 0)\n");
		return -EINVAL;
	}
	if (num_devices > MOCK_ACCEL_MAX_PFS) {
		pr_err("invalid num_devices %u (0..%d)\n", num_devices,
		       MOCK_ACCEL_MAX_PFS);
		return -EINVAL;
	}
	if (numa_nodes < 1 || numa_nodes > MOCK_ACCEL_MAX_NUMA_NODES) {
		pr_err("invalid numa_nodes %u (1..%d)\n", numa_nodes,
		       MOCK_ACCEL_MAX_NUMA_NODES);
		return -EINVAL;
	}
	if (total_vfs > MOCK_ACCEL_MAX_VFS) {
		pr_err("invalid total_vfs %u (0..%d)\n", total_vfs,
		       MOCK_ACCEL_MAX_VFS);
		return -EINVAL;
	}
	if (num_vfs > total_vfs) {
		pr_err("invalid num_vfs %u (0..total_vfs=%u)\n", num_vfs,
		       total_vfs);
		return -EINVAL;
	}
	if (!backend || (strcmp(backend, "soft") && strcmp(backend, "pci"))) {
		pr_err("invalid backend %s (soft or pci)\n",
		       backend ? backend : "(null)");
		return -EINVAL;
	}
	if (!IS_ENABLED(CONFIG_X86) && mock_accel_backend_is_pci()) {
		pr_err("invalid backend pci (x86 only: it needs struct pci_sysdata)\n");
		return -EINVAL;
	}
	if (!mock_accel_firmware_name || !*mock_accel_firmware_name) {
		pr_err("invalid firmware_name (empty)\n");
		return -EINVAL;
	}
	return 0;
}

int mock_accel_soft_init(void)
{
	struct mock_accel_dev *adev;
	const char *source;
	unsigned int i;
	int ret;

	if (!uuid_seed) {
		uuid_seed = soft_default_seed(&source);
		pr_info("uuid_seed %lu (%s)\n", uuid_seed, source);
	}

	ret = bus_register(&mock_accel_bus);
	if (ret)
		return ret;

	/* backend=pci: the devices are made by vpci.c, after the driver */
	mutex_lock(&mock_accel_soft_lock);
	for (i = 0; i < num_devices && !mock_accel_backend_is_pci(); i++) {
		ret = soft_pf_create(i, i % numa_nodes, memory_size, total_vfs,
				     &adev);
		if (ret)
			break;
		if (num_vfs) {
			ret = mock_accel_sriov_set(adev, num_vfs);
			if (ret)
				break;
		}
	}
	mutex_unlock(&mock_accel_soft_lock);
	if (ret) {
		pr_err("creating software device %u failed (%d)\n", i, ret);
		soft_destroy_all();
		bus_unregister(&mock_accel_bus);
	}
	return ret;
}

void mock_accel_soft_exit(void)
{
	soft_destroy_all();
	bus_unregister(&mock_accel_bus);
}
